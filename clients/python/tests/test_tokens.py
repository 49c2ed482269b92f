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
