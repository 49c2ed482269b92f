"""watch_release survives a server restart: it reconnects and resumes from the
last seq, ending at SUCCEEDED with contiguous seqs."""

from __future__ import annotations

import asyncio
import signal

import pytest

from conftest import Server
from helpers import assert_contiguous, final_status
from promoflow import AsyncClient, Client, Unavailable, pb


def _slow_world(pf: Client) -> None:
    for name in ("dev", "qa", "prod"):
        pf.create_environment(name)
    pf.create_workflow("soak", wait=4)
    pf.create_product("app", applications=[("dev", "app-dev", "1.0.0"), ("qa", "app-qa"), ("prod", "app-prod")])
    pf.create_flow(
        "slow",
        trigger_environment="dev",
        steps=[
            {"environment": "qa", "depends_on": ["dev"], "policy": {"post_action": "soak"}},
            {"environment": "prod", "depends_on": ["qa"]},
        ],
    )


def _soak_running(event: pb.ReleaseEvent) -> bool:
    """Whether the event shows qa's soak (post-action) running: as a step
    change, or inside a snapshot / environment change when the watch started late."""

    def running(steps) -> bool:  # type: ignore[no-untyped-def]
        return any(s.kind == pb.STEP_KIND_POST_ACTION and s.status == pb.STEP_STATUS_RUNNING for s in steps)

    kind = event.WhichOneof("change")
    if kind == "step":
        return event.step.environment == "qa" and running([event.step.step])
    if kind == "environment":
        return event.environment.environment.environment == "qa" and running(event.environment.environment.steps)
    if kind == "snapshot":
        return any(e.environment == "qa" and running(e.steps) for e in event.snapshot.environments)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_watch_resumes_across_restart(server: Server, client: Client, sig: int) -> None:
    _slow_world(client)
    release = client.trigger_release("slow", "app")
    events = []
    restarted = False
    for event in client.watch_release(release.id, reconnect_timeout=30):
        events.append(event)
        if not restarted and _soak_running(event):
            # The server goes away mid-release, while the watch is open.
            server.stop(sig)
            server.restart()
            restarted = True
    assert restarted, "the soak step never started"
    assert events[0].WhichOneof("change") == "snapshot"
    assert_contiguous(events)
    assert final_status(events) == pb.RELEASE_STATUS_SUCCEEDED
    done = client.get_release(release.id)
    assert done.status == pb.RELEASE_STATUS_SUCCEEDED
    assert done.last_seq == events[-1].seq


def test_async_watch_resumes_across_restart(server: Server, client: Client) -> None:
    _slow_world(client)
    release = client.trigger_release("slow", "app")

    async def watch() -> list[pb.ReleaseEvent]:
        events = []
        restarted = False
        async with AsyncClient(server.target, token=server.token) as pf:
            async for event in pf.watch_release(release.id, reconnect_timeout=30):
                events.append(event)
                if not restarted and _soak_running(event):
                    await asyncio.to_thread(server.restart)
                    restarted = True
        assert restarted
        return events

    events = asyncio.run(watch())
    assert_contiguous(events)
    assert final_status(events) == pb.RELEASE_STATUS_SUCCEEDED


def test_watch_gives_up_when_server_stays_down(server: Server, client: Client) -> None:
    _slow_world(client)
    release = client.trigger_release("slow", "app")
    with pytest.raises(Unavailable):
        for event in client.watch_release(release.id, reconnect_timeout=1.0):
            if _soak_running(event):
                server.stop()


def test_watch_releases_resumes_from_cursor_across_restart(server: Server, client: Client) -> None:
    import threading

    _slow_world(client)
    # A release finished before the watch starts is not seen ("from now").
    first_id = client.trigger_release("slow", "app").id
    client.terminate_release(first_id)
    assert client.wait_release(first_id).status == pb.RELEASE_STATUS_TERMINATED

    triggered: list[str] = []

    def trigger_later() -> None:
        import time

        time.sleep(0.5)
        with Client(server.target, token=server.token) as other:
            triggered.append(other.trigger_release("slow", "app", version="2.0.0").id)

    threading.Thread(target=trigger_later, daemon=True).start()
    events: list[pb.ReleaseEvent] = []
    restarted = False
    for response in client.watch_releases(product="app", reconnect_timeout=30):
        event = response.event
        if event.WhichOneof("change") == "heartbeat":
            continue
        assert response.cursor
        assert event.release_id != first_id
        events.append(event)
        if not restarted and _soak_running(event):
            server.restart()
            restarted = True
        if final_status(events) == pb.RELEASE_STATUS_SUCCEEDED:
            break
    assert restarted
    assert triggered and all(e.release_id == triggered[0] for e in events)
    assert events[0].seq == 1 and events[0].WhichOneof("change") == "snapshot"
    assert_contiguous(events)
