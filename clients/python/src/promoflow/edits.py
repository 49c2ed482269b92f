"""Builders of FlowEdit messages for ``Client.edit_flow``.

    from promoflow import edits
    client.edit_flow("parallel", [
        edits.add_environments("qa", ["prod", "prod-eu"], policy={"post_action": "soak"}),
        edits.set_policy("prod", {"pre_action": "gate"}),
    ], expected_version=1)
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from . import pb
from ._convert import duration, message

__all__ = [
    "add_environments",
    "remove_environment",
    "set_dependencies",
    "set_policy",
    "set_hooks",
    "set_settings",
]


def add_environments(after: str, environments: Iterable[str], *, policy: Any = None) -> pb.FlowEdit:
    """New steps after `after`, each depending only on it (several = parallel siblings)."""
    return pb.FlowEdit(
        add_environments=pb.FlowEdit.AddEnvironments(
            after=after, environments=list(environments), policy=message(pb.Policy, policy)
        )
    )


def remove_environment(
    environment: str, *, reconnect_to: Optional[str] = None, remove_downstream: bool = False
) -> pb.FlowEdit:
    """Removes a step; its dependants are re-pointed to `reconnect_to` or removed too."""
    edit = pb.FlowEdit.RemoveEnvironment(environment=environment)
    if reconnect_to is not None:
        edit.reconnect_to = reconnect_to
    elif remove_downstream:
        edit.remove_downstream = True
    return pb.FlowEdit(remove_environment=edit)


def set_dependencies(environment: str, depends_on: Iterable[str]) -> pb.FlowEdit:
    """Replaces the `depends_on` list of a step."""
    return pb.FlowEdit(
        set_dependencies=pb.FlowEdit.SetDependencies(environment=environment, depends_on=list(depends_on))
    )


def set_policy(environment: str, policy: Any = None) -> pb.FlowEdit:
    """Replaces the policy of a step (None = action NONE only)."""
    return pb.FlowEdit(
        set_policy=pb.FlowEdit.SetPolicy(environment=environment, policy=message(pb.Policy, policy))
    )


def set_hooks(environment: str = "", hooks: Any = None) -> pb.FlowEdit:
    """Replaces a step's hooks, or the release-level hooks when `environment` is empty."""
    return pb.FlowEdit(set_hooks=pb.FlowEdit.SetHooks(environment=environment, hooks=message(pb.Hooks, hooks)))


def set_settings(
    *,
    description: Optional[str] = None,
    trigger_environment: Optional[str] = None,
    promotion_timeout: Any = None,
    trigger_workflow: Optional[str] = None,
) -> pb.FlowEdit:
    """Changes flow-level settings; None keeps the current value (timeout 0 = no limit)."""
    s = pb.FlowEdit.SetSettings()
    if description is not None:
        s.description = description
    if trigger_environment is not None:
        s.trigger_environment = trigger_environment
    if trigger_workflow is not None:
        s.trigger_workflow = trigger_workflow
    if promotion_timeout is not None:
        s.promotion_timeout.CopyFrom(duration(promotion_timeout, allow_zero=True))
    return pb.FlowEdit(set_settings=s)
