"""TLS and mutual TLS: a server started with --tls-cert/--tls-key/--tls-client-ca."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from conftest import Server
from promoflow import AsyncClient, Client, FailedPrecondition, pb, tls_credentials
from promoflow.errors import PromoflowError


def _creds(server: Server, *, client_cert: bool = True) -> grpc.ChannelCredentials:
    certs = server.certs
    assert certs is not None
    if client_cert:
        return tls_credentials(certs / "ca.pem", certs / "client.pem", certs / "client.key")
    return tls_credentials(certs / "ca.pem")


def test_mutual_tls_with_a_token_reaches_every_call(tls_server: Server) -> None:
    with Client(tls_server.target, credentials=_creds(tls_server), token=tls_server.token) as pf:
        pf.create_environment("dev")
        assert [e.name for e in pf.list_environments()] == ["dev"]
        # The raw stubs ride on the same TLS channel and carry the token too.
        got = pf.stubs.environment.GetEnvironment(pb.GetEnvironmentRequest(name="dev"))
        assert got.environment.name == "dev"


def test_the_certificate_alone_names_its_principal(tls_server: Server) -> None:
    with Client(tls_server.target, credentials=_creds(tls_server), token="") as pf:
        with pytest.raises(PromoflowError) as e:
            list(pf.list_environments())
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "cert:deployer" in str(e.value)


def test_plaintext_and_certificate_less_clients_are_refused(tls_server: Server) -> None:
    with Client(tls_server.target, token=tls_server.token) as plain:
        with pytest.raises(FailedPrecondition) as e:
            list(plain.list_environments())
    assert "requires TLS" in str(e.value)
    with Client(tls_server.target, credentials=_creds(tls_server, client_cert=False), token=tls_server.token, timeout=5) as no_cert:
        with pytest.raises(PromoflowError) as e2:
            list(no_cert.list_environments())
    assert e2.value.code == grpc.StatusCode.UNAVAILABLE


def test_the_async_client_over_mutual_tls(tls_server: Server) -> None:
    async def run() -> list[str]:
        async with AsyncClient(tls_server.target, credentials=_creds(tls_server), token=tls_server.token) as pf:
            await pf.create_environment("qa")
            return [e.name async for e in pf.list_environments()]

    assert asyncio.run(run()) == ["qa"]


def test_tls_credentials_wants_both_halves_of_a_client_identity(tmp_path) -> None:
    with pytest.raises(ValueError, match="both cert and key"):
        tls_credentials(cert=tmp_path / "client.pem")


def test_server_addresses_are_taken_as_the_cli_takes_them(server: Server, tls_server: Server) -> None:
    with Client(f"http://{server.target}", token=server.token) as plain:
        assert list(plain.list_environments()) == []
    with Client(f"https://{tls_server.target}/", credentials=_creds(tls_server), token=tls_server.token) as tls:
        assert list(tls.list_environments()) == []
    with pytest.raises(ValueError, match="no path"):
        Client(f"http://{server.target}/v1")
    with pytest.raises(ValueError, match="use https://"):
        Client(f"http://{server.target}", credentials=_creds(tls_server))
