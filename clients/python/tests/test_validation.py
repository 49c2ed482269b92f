"""INVALID_ARGUMENT errors decoded into field violations (google.rpc.BadRequest)."""

from __future__ import annotations

import grpc
import pytest

from helpers import create_world
from promoflow import Client, FieldViolation, InvalidArgument, edits


def test_environment_name_violation(client: Client) -> None:
    with pytest.raises(InvalidArgument) as exc:
        client.create_environment("Bad_Name")
    err = exc.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.violation_fields() == ["environment.name"]
    assert isinstance(err.violations[0], FieldViolation)
    assert err.violations[0].description
    assert err.status is not None and err.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_flow_violations_all_at_once(client: Client) -> None:
    create_world(client)
    with pytest.raises(InvalidArgument) as exc:
        client.create_flow(
            "Broken_Flow",
            trigger_environment="dev",
            steps=[
                {"environment": "qa", "depends_on": ["qa"]},
                {"environment": "nowhere", "depends_on": ["dev"]},
                {"environment": "prod", "depends_on": ["qa"], "policy": {"post_action": "no-such-workflow"}},
            ],
        )
    fields = exc.value.violation_fields()
    assert "flow.name" in fields
    assert "flow.steps[0].depends_on[0]" in fields
    assert "flow.steps[1].environment" in fields
    assert "flow.steps[2].policy.post_action" in fields
    assert all(v.description for v in exc.value.violations)
    # ValidateFlow reports the same problems in its response, without the prefix.
    result = client.validate_flow(
        {"name": "Broken_Flow", "trigger_environment": "dev", "steps": [{"environment": "qa", "depends_on": ["qa"]}]}
    )
    assert {v.field for v in result.violations} >= {"name", "steps[0].depends_on[0]"}


def test_edit_violation_names_the_edit(client: Client) -> None:
    create_world(client)
    with pytest.raises(InvalidArgument) as exc:
        client.edit_flow("parallel", [edits.set_policy("nowhere", None)], expected_version=2)
    assert any(f.startswith("edits[0]") for f in exc.value.violation_fields()), exc.value.violations
