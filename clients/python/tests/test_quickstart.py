"""The quick start against the real server, through the sync client."""

from __future__ import annotations

import time

import grpc
import pytest

from helpers import APPLICATIONS, assert_contiguous, create_world, final_status
from promoflow import (
    Aborted,
    AlreadyExists,
    Client,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PromoflowError,
    edits,
    pb,
)


def wait_for_status(pf: Client, release_id: str, status: int, timeout: float = 20.0) -> pb.Release:
    deadline = time.monotonic() + timeout
    while True:
        release = pf.get_release(release_id)
        if release.status == status:
            return release
        if time.monotonic() > deadline:
            raise AssertionError(
                f"release {release_id} is {pb.ReleaseStatus.Name(release.status)}, not {pb.ReleaseStatus.Name(status)}"
            )
        time.sleep(0.05)


def test_quick_start(client: Client) -> None:
    pf = client
    create_world(pf)

    # Catalog reads.
    assert [e.name for e in pf.list_environments()] == sorted(n for n, _ in [
        ("dev", 0), ("qa", 0), ("prod", 0), ("prod-eu", 0), ("prod-asia", 0)])
    assert pf.get_environment("prod").kind == pb.ENVIRONMENT_KIND_PRODUCTION
    assert pf.get_workflow("soak").wait.duration.ToMilliseconds() == 300
    product = pf.get_product("demo-trioapp")
    assert [a.environment for a in product.applications] == [a[0] for a in APPLICATIONS]
    assert product.concurrency == pb.CONCURRENCY_QUEUE
    with pytest.raises(AlreadyExists) as exc:
        pf.create_environment("dev")
    assert exc.value.code == grpc.StatusCode.ALREADY_EXISTS

    # Flow reads, concurrency control, export and rendering.
    flow = pf.get_flow("parallel")
    assert [s.environment for s in flow.steps] == ["qa", "prod", "prod-eu", "prod-asia"]
    assert [f.version for f in pf.list_flow_versions("parallel")] == [2, 1]
    with pytest.raises(Aborted):
        pf.edit_flow("parallel", [edits.set_settings(description="x")], expected_version=1)
    assert "kind: PromotionFlow" in pf.export_flow("parallel")
    assert "prod-asia" in pf.render_flow("parallel", format="mermaid")
    plan = pf.validate_flow(flow).plan
    assert [list(w.environments) for w in plan.waves] == [["dev"], ["qa"], ["prod", "prod-asia", "prod-eu"]]

    # 1. Trigger and watch to completion.
    release = pf.trigger_release("parallel", "demo-trioapp", initiator="pytest", message="quick start")
    assert release.version == "1.0.0"
    events = list(pf.watch_release(release.id))
    assert events[0].WhichOneof("change") == "snapshot"
    assert_contiguous(events)
    assert final_status(events) == pb.RELEASE_STATUS_SUCCEEDED
    envs_seen = {e.environment.environment.environment for e in events if e.WhichOneof("change") == "environment"}
    assert {"prod", "prod-eu", "prod-asia"} <= envs_seen
    done = pf.get_release(release.id)
    assert done.status == pb.RELEASE_STATUS_SUCCEEDED
    assert done.counters.succeeded == done.counters.total == 5
    assert done.last_seq == events[-1].seq
    # Replaying from a seq gives exactly the events after it.
    replay = list(pf.watch_release(release.id, after_seq=1))
    assert [e.seq for e in replay] == list(range(2, done.last_seq + 1))
    with pytest.raises(OutOfRange):
        list(pf.watch_release(release.id, after_seq=100000))
    assert "SUCCEEDED" in pf.render_flow(release_id=release.id, format="dot")
    assert pf.get_product("demo-trioapp").applications[4].version == "1.0.0"

    # 2. Approval: prod waits for the gate.
    pf.edit_flow("parallel", [edits.set_policy("prod", {"pre_action": "gate"})], expected_version=2)
    release = pf.trigger_release("parallel", "demo-trioapp", version="1.1.0")
    suspended = False
    watched = []
    for event in pf.watch_release(release.id):
        watched.append(event)
        if not suspended and event.WhichOneof("change") == "release" and event.release.status == pb.RELEASE_STATUS_SUSPENDED:
            suspended = True
            with pytest.raises(FailedPrecondition):
                pf.approve_environment(release.id, "qa")
            pf.approve_environment(release.id, "prod", comment="ship it")
    assert suspended
    assert_contiguous(watched)
    assert final_status(watched) == pb.RELEASE_STATUS_SUCCEEDED
    prod = next(e for e in pf.get_release(release.id).environments if e.environment == "prod")
    assert prod.steps[0].kind == pb.STEP_KIND_PRE_ACTION and "ship it" in prod.steps[0].message

    # 3. Terminate a long soak, then retry it to success.
    pf.edit_flow(
        "parallel",
        [edits.set_policy("prod", None), edits.set_policy("prod-asia", {"post_action": "long-soak"})],
        expected_version=3,
    )
    release = pf.trigger_release("parallel", "demo-trioapp", version="1.2.0")
    wait_for_status(pf, release.id, pb.RELEASE_STATUS_RUNNING)
    pf.terminate_release(release.id, reason="pytest")
    terminated = pf.wait_release(release.id)
    assert terminated.status == pb.RELEASE_STATUS_TERMINATED
    assert terminated.message == "pytest"
    with pytest.raises(FailedPrecondition):
        pf.terminate_release(release.id)
    retried = pf.retry_release(release.id)
    assert retried.status == pb.RELEASE_STATUS_RUNNING
    events = list(pf.watch_release(release.id, after_seq=terminated.last_seq))
    assert events[0].seq == terminated.last_seq + 1
    assert_contiguous(events)
    assert final_status(events) == pb.RELEASE_STATUS_SUCCEEDED

    releases = list(pf.list_releases(product="demo-trioapp", page_size=2))
    assert len(releases) == 3
    assert [r.status for r in releases] == [pb.RELEASE_STATUS_SUCCEEDED] * 3
    assert len(list(pf.list_releases(status="terminated"))) == 0


SEQUENTIAL_YAML = """\
apiVersion: codefresh.io/v1beta1
kind: PromotionFlow
metadata:
  name: sequential
  annotations:
    description: dev to qa to prod, with a soak after each
    owner: platform-team
spec:
  triggerEnvironment: dev
  steps:
    - environment: qa
      dependsOn: [dev]
      policy:
        action: none
        postAction: soak
    - environment: prod
      dependsOn: [qa]
      policy:
        postAction: soak
  promotionTimeoutLimit: 5
"""


def test_flow_by_yaml_import(client: Client) -> None:
    pf = client
    create_world(pf)
    flow = pf.import_flow(SEQUENTIAL_YAML)
    assert flow.name == "sequential" and flow.version == 1
    assert flow.description == "dev to qa to prod, with a soak after each"
    assert dict(flow.annotations) == {"owner": "platform-team"}
    assert flow.promotion_timeout.seconds == 300
    assert [(s.environment, list(s.depends_on)) for s in flow.steps] == [("qa", ["dev"]), ("prod", ["qa"])]
    with pytest.raises(AlreadyExists):
        pf.import_flow(SEQUENTIAL_YAML)
    # Export -> import is lossless: importing the export over the flow
    # changes nothing (no new version); a changed document is version 2.
    again = pf.import_flow(pf.export_flow("sequential"), replace=True)
    assert again.version == 1
    assert list(again.steps) == list(flow.steps)
    changed = pf.import_flow(pf.export_flow("sequential").replace("owner: platform-team", "owner: sre"), replace=True)
    assert changed.version == 2
    # Copy ("save as").
    assert pf.copy_flow("sequential", "sequential-copy").version == 1

    release = pf.trigger_release("sequential", "demo-trioapp")
    done = pf.wait_release(release.id)
    assert done.status == pb.RELEASE_STATUS_SUCCEEDED
    assert [e.environment for e in done.environments] == ["dev", "qa", "prod"]

    with pytest.raises(InvalidArgument) as exc:
        pf.import_flow(SEQUENTIAL_YAML.replace("postAction: soak\n    - environment: prod", "postActon: soak\n    - environment: prod"), replace=True)
    assert exc.value.violations, exc.value
    field, description = exc.value.violations[0]
    # The field names the YAML path of the unknown key (under `yaml`).
    assert field.startswith("yaml")
    assert "postActon" in field + description


def test_report_deployment_triggers_promotion_flow(client: Client) -> None:
    pf = client
    create_world(pf)
    product = pf.get_product("demo-trioapp")
    product.promotion_flows.add(flow="parallel").selectors.add(
        key=pb.SELECTOR_KEY_GIT_REVISION, operator=pb.SELECTOR_OPERATOR_IN, values=["main"]
    )
    product = pf.update_product(product)
    assert product.version == 2
    skipped = pf.report_deployment("demo-trioapp", "dev", "2.0.0", commit={"sha": "abc", "revision": "feature-x"})
    assert not skipped.HasField("release")
    resp = pf.report_deployment(
        "demo-trioapp", "dev", "2.0.1", commit={"sha": "def", "revision": "main", "message": "fix"}, request_id="ci-1"
    )
    assert resp.HasField("release")
    assert resp.release.initiator == "report-deployment"
    assert pf.wait_release(resp.release.id).status == pb.RELEASE_STATUS_SUCCEEDED
    # Same idempotency key, same request: the same release.
    again = pf.report_deployment(
        "demo-trioapp", "dev", "2.0.1", commit={"sha": "def", "revision": "main", "message": "fix"}, request_id="ci-1"
    )
    assert again.release.id == resp.release.id


def test_not_found_and_codes(client: Client) -> None:
    with pytest.raises(NotFound) as exc:
        client.get_environment("nope")
    err = exc.value
    assert isinstance(err, PromoflowError)
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.violations == []
    with pytest.raises(NotFound):
        client.get_release("no-such-release")
    with pytest.raises(NotFound):
        list(client.watch_release("no-such-release"))
