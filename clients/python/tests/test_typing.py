"""The type hints users see: the asyncio client's stub is current, and mypy
accepts code that uses both clients correctly and rejects code that mixes
them up (a missing ``await``, a sync ``for`` over an async list)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parents[1]


def _stub_tool():
    spec = importlib.util.spec_from_file_location("async_stub", CLIENT_DIR / "tools" / "async_stub.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mypy(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "usage.py"
    path.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--show-error-codes", "--check-untyped-defs", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def test_async_stub_is_up_to_date() -> None:
    tool = _stub_tool()
    committed = tool.DEFAULT_OUT.read_text()
    assert committed == tool.render(), "src/promoflow/aio.pyi is stale: run python tools/async_stub.py"


def test_installed_package_ships_the_stub() -> None:
    import promoflow.aio

    stub = Path(promoflow.aio.__file__).with_suffix(".pyi")
    assert stub.is_file(), f"{stub} is not installed (package-data)"


GOOD = """
    from promoflow import AsyncClient, Client, pb

    def sync_use(c: Client) -> str:
        r: pb.Release = c.get_release("x")
        names: list[str] = [e.name for e in c.list_environments()]
        return r.id + ",".join(names)

    async def async_use(pf: AsyncClient) -> str:
        r: pb.Release = await pf.trigger_release("parallel", "demo")
        f: pb.Flow = await pf.get_flow("parallel")
        names: list[str] = [e.name async for e in pf.list_environments()]
        async for event in pf.watch_release(r.id):
            seq: int = event.seq
        done: pb.Release = await pf.wait_release(r.id)
        await pf.delete_environment("dev")
        return f.name + done.id + ",".join(names)
"""


def test_mypy_accepts_correct_use_of_both_clients(tmp_path: Path) -> None:
    run = _mypy(tmp_path, GOOD)
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_rejects_a_missing_await_and_a_sync_loop_over_an_async_list(tmp_path: Path) -> None:
    run = _mypy(
        tmp_path,
        """
        from promoflow import AsyncClient, Client, pb

        async def missing_await(pf: AsyncClient) -> pb.Release:
            r: pb.Release = pf.get_release("x")
            return r

        async def sync_loop(pf: AsyncClient) -> None:
            for e in pf.list_environments():
                pass

        async def awaiting_sync(c: Client) -> None:
            await c.get_release("x")
        """,
    )
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    assert "usage.py:5: error: Incompatible types in assignment" in out, out
    assert "usage.py:9: error:" in out and "__iter__" in out, out
    assert "usage.py:13: error:" in out and "Release" in out, out
