"""Fixtures: a real promoflow server per test (free port, temporary SQLite)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import grpc
import pytest

from promoflow import Client, tls_credentials

REPO_ROOT = Path(__file__).resolve().parents[3]


def _binary() -> str:
    path = os.environ.get("PROMOFLOW_BIN") or str(REPO_ROOT / "target" / "debug" / "promoflow")
    if not os.access(path, os.X_OK):
        pytest.fail(f"promoflow binary not found at {path}: build it (cargo build --bin promoflow) or set PROMOFLOW_BIN")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `promoflow serve` process on a SQLite file; restartable on the same port and DB."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        serve_args: Sequence[str] = (),
        credentials: Optional[grpc.ChannelCredentials] = None,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        # Extra flags of `promoflow serve` (TLS), and the credentials that reach it.
        self.serve_args = list(serve_args)
        self.credentials = credentials
        self.certs: Optional[Path] = None
        self.db = workdir / "promoflow.db"
        self.log_path = workdir / "server.log"
        self.port = _free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        """The admin token the server wrote on its first start."""
        return (self.workdir / "data" / "admin.token").read_text().strip()

    def start(self, *, new_port_on_conflict: bool = True, timeout: float = 30.0) -> None:
        for _ in range(5):
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "serve",
                    "--listen",
                    self.target,
                    "--database-url",
                    f"sqlite://{self.db}?mode=rwc",
                    "--data-dir",
                    str(self.workdir / "data"),
                    *self.serve_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
            )
            log.close()
            if self._wait_ready(timeout):
                return
            if self.proc.poll() is not None and "in use" in self.log_path.read_text(errors="replace").lower():
                if new_port_on_conflict:
                    self.port = _free_port()
                time.sleep(0.2)
                continue
            break
        self.stop()
        pytest.fail(f"promoflow server did not start; log:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if not (self.workdir / "data" / "admin.token").exists():
                time.sleep(0.1)
                continue
            with Client(self.target, timeout=2.0, token=self.token, credentials=self.credentials) as c:
                try:
                    list(c.list_environments(page_size=1))
                    return True
                except Exception:
                    pass
            time.sleep(0.1)
        return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> Optional[int]:
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def restart(self) -> None:
        self.stop()
        self.start(new_port_on_conflict=False)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Server]:
    """A server that requires mutual TLS; `server.certs` holds the test certificates."""
    workdir = tmp_path / "tls"  # its own database and data dir, beside a `server` of the same test
    workdir.mkdir()
    certs = make_certs(workdir / "certs")
    srv = Server(
        _binary(),
        workdir,
        serve_args=[
            "--tls-cert", str(certs / "server.pem"),
            "--tls-key", str(certs / "server.key"),
            "--tls-client-ca", str(certs / "ca.pem"),
        ],
        credentials=tls_credentials(certs / "ca.pem", certs / "client.pem", certs / "client.key"),
    )
    srv.certs = certs
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(_binary(), tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def make_certs(directory: Path) -> Path:
    """Test certificates (scripts/test-certs): ca.pem, server.pem/key, client.pem/key (CN=deployer)."""
    subprocess.run([str(REPO_ROOT / "scripts" / "test-certs"), str(directory)], check=True)
    return directory


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.target, token=server.token) as c:
        yield c


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Show the server log of a failed test."""
    if call.when == "call" and call.excinfo is not None:
        args = item.funcargs if hasattr(item, "funcargs") else {}
        srv = args.get("server") or args.get("tls_server")
        if isinstance(srv, Server):
            item.add_report_section("call", "promoflow server log", srv.log_tail())


__all__ = ["Server", "grpc"]
