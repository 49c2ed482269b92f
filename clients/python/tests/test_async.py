"""The asyncio client: the quick start's main path and typed errors."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from conftest import Server
from helpers import assert_contiguous, final_status
from promoflow import AlreadyExists, AsyncClient, InvalidArgument, NotFound, edits, pb


def test_async_quick_start(server: Server) -> None:
    async def run() -> None:
        async with AsyncClient(server.target, token=server.token) as pf:
            for name in ("dev", "qa", "prod-eu", "prod-asia"):
                await pf.create_environment(name)
            await pf.create_workflow("soak", wait=0.2)
            await pf.create_workflow("gate", approval=True)
            await pf.create_product(
                "shop",
                applications=[("dev", "shop-dev", "3.1.0"), ("qa", "shop-qa"), ("prod-eu", "shop-eu"), ("prod-asia", "shop-asia")],
                concurrency="terminate",
            )
            await pf.create_flow("fan", trigger_environment="dev", steps=[{"environment": "qa", "depends_on": ["dev"]}])
            flow = await pf.edit_flow(
                "fan",
                [
                    edits.add_environments("qa", ["prod-eu", "prod-asia"], policy={"post_action": "soak"}),
                    edits.set_policy("prod-eu", {"pre_action": "gate", "post_action": "soak"}),
                ],
                expected_version=1,
            )
            assert flow.version == 2
            names = [e.name async for e in pf.list_environments(page_size=1)]
            assert names == ["dev", "prod-asia", "prod-eu", "qa"]

            with pytest.raises(AlreadyExists):
                await pf.create_product("shop")
            with pytest.raises(NotFound) as exc:
                await pf.get_flow("nope")
            assert exc.value.code == grpc.StatusCode.NOT_FOUND
            with pytest.raises(InvalidArgument) as bad:
                await pf.create_workflow("bad")
            assert bad.value.violation_fields() == ["workflow.kind"]
            with pytest.raises(ValueError):
                await pf.create_workflow("bad", wait=0.1, approval=True)

            release = await pf.trigger_release("fan", "shop")
            events = []
            async for event in pf.watch_release(release.id):
                events.append(event)
                if event.WhichOneof("change") == "release" and event.release.status == pb.RELEASE_STATUS_SUSPENDED:
                    await pf.approve_environment(release.id, "prod-eu", comment="ok")
            assert_contiguous(events)
            assert final_status(events) == pb.RELEASE_STATUS_SUCCEEDED

            # Reject: the environment fails and the release with it.
            release = await pf.trigger_release("fan", "shop", version="3.2.0")
            async for event in pf.watch_release(release.id):
                if event.WhichOneof("change") == "release" and event.release.status == pb.RELEASE_STATUS_SUSPENDED:
                    await pf.reject_environment(release.id, "prod-eu", comment="not today")
            failed = await pf.get_release(release.id)
            assert failed.status == pb.RELEASE_STATUS_FAILED
            retried = await pf.retry_release(release.id)
            assert retried.status == pb.RELEASE_STATUS_RUNNING
            await pf.terminate_release(release.id)
            done = await pf.wait_release(release.id)
            assert done.status == pb.RELEASE_STATUS_TERMINATED

            statuses = [r.status async for r in pf.list_releases(product="shop")]
            assert statuses == [pb.RELEASE_STATUS_TERMINATED, pb.RELEASE_STATUS_SUCCEEDED]

    asyncio.run(run())
