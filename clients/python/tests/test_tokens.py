"""Tokens: calls need one; a viewer reads but does not write; revocation is at once."""

from __future__ import annotations

import grpc
import pytest

from promoflow import Client, pb
from promoflow.errors import PromoflowError


def _code(e: BaseException) -> grpc.StatusCode:
    assert isinstance(e, PromoflowError), e
    return e.code


def test_tokens_decide_what_a_client_may_do(server, client: Client, monkeypatch) -> None:
    monkeypatch.delenv("PROMOFLOW_TOKEN", raising=False)
    with Client(server.target) as anonymous:
        with pytest.raises(PromoflowError) as e:
            list(anonymous.list_environments())
        assert _code(e.value) == grpc.StatusCode.UNAUTHENTICATED
    made = client.stubs.token.CreateToken(
        pb.CreateTokenRequest(name="viewer", role=pb.ROLE_VIEWER), metadata=client.metadata
    )
    assert made.secret.startswith("pf_")
    with Client(server.target, token=made.secret) as viewer:
        assert list(viewer.list_environments()) == []
        with pytest.raises(PromoflowError) as e:
            viewer.create_environment("dev")
        assert _code(e.value) == grpc.StatusCode.PERMISSION_DENIED
        assert "environments.write" in str(e.value)
        client.stubs.token.RevokeToken(pb.RevokeTokenRequest(name="viewer"), metadata=client.metadata)
        with pytest.raises(PromoflowError) as e:
            list(viewer.list_environments())
        assert _code(e.value) == grpc.StatusCode.UNAUTHENTICATED
    # The environment variable is read when no token is given.
    monkeypatch.setenv("PROMOFLOW_TOKEN", server.token)
    with Client(server.target) as from_env:
        assert list(from_env.list_environments()) == []


def test_the_generated_stubs_carry_the_token_too(server, client: Client) -> None:
    # No metadata passed: the channel's interceptor adds the token.
    made = client.stubs.token.CreateToken(pb.CreateTokenRequest(name="raw", role=pb.ROLE_VIEWER))
    assert made.secret.startswith("pf_")
    listed = client.stubs.token.ListTokens(pb.ListTokensRequest())
    assert "raw" in [t.name for t in listed.tokens]
    # A call's own authorization wins over the channel's.
    with pytest.raises(grpc.RpcError) as e:
        client.stubs.token.ListTokens(
            pb.ListTokensRequest(), metadata=[("authorization", "Bearer pf_bad")]
        )
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def _async_stub_calls(target: str, token: str) -> tuple[int, int]:
    from promoflow.aio import AsyncClient

    async with AsyncClient(target, token=token) as pf:
        listed = await pf.stubs.token.ListTokens(pb.ListTokensRequest())
        envs = await pf.stubs.environment.ListEnvironments(pb.ListEnvironmentsRequest())
        return len(listed.tokens), len(envs.environments)


def test_the_async_stubs_carry_the_token_too(server) -> None:
    import asyncio

    tokens, envs = asyncio.run(_async_stub_calls(server.target, server.token))
    assert tokens >= 1 and envs == 0
