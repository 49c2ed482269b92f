"""Shared setup of the quick-start world and assertions on event streams."""

from __future__ import annotations

from promoflow import Client, edits, pb

ENVIRONMENTS = [
    ("dev", "non_production"),
    ("qa", "non_production"),
    ("prod", "production"),
    ("prod-eu", "production"),
    ("prod-asia", "production"),
]
APPLICATIONS = [
    ("dev", "trio-dev", "1.0.0"),
    ("qa", "trio-qa"),
    ("prod", "trio-prod"),
    ("prod-eu", "trio-eu"),
    ("prod-asia", "trio-asia"),
]


def create_world(pf: Client) -> pb.Flow:
    """Environments, workflows, the demo-trioapp product and the `parallel`
    flow dev -> qa -> {prod, prod-eu, prod-asia}, built by edits."""
    for name, kind in ENVIRONMENTS:
        pf.create_environment(name, kind=kind, description=f"{name} environment")
    pf.create_workflow("soak", wait=0.3)
    pf.create_workflow("long-soak", wait=2)
    pf.create_workflow("gate", approval=True)
    pf.create_product("demo-trioapp", applications=APPLICATIONS)
    flow = pf.create_flow(
        "parallel",
        trigger_environment="dev",
        steps=[{"environment": "qa", "depends_on": ["dev"]}],
    )
    assert flow.version == 1
    flow = pf.edit_flow(
        "parallel",
        [edits.add_environments("qa", ["prod", "prod-eu", "prod-asia"], policy={"post_action": "soak"})],
        expected_version=1,
    )
    assert flow.version == 2
    return flow


def assert_contiguous(events: list[pb.ReleaseEvent]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"seqs not contiguous: {seqs}"


def final_status(events: list[pb.ReleaseEvent]) -> int:
    """The release status after the last event that carries one."""
    status = pb.RELEASE_STATUS_UNSPECIFIED
    for e in events:
        kind = e.WhichOneof("change")
        if kind == "snapshot":
            status = e.snapshot.status
        elif kind == "release":
            status = e.release.status
    return status
