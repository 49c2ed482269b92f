import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PromotionAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROMOTION_ACTION_UNSPECIFIED: _ClassVar[PromotionAction]
    PROMOTION_ACTION_NONE: _ClassVar[PromotionAction]
    PROMOTION_ACTION_COMMIT: _ClassVar[PromotionAction]
    PROMOTION_ACTION_PULL_REQUEST: _ClassVar[PromotionAction]

class RenderFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RENDER_FORMAT_UNSPECIFIED: _ClassVar[RenderFormat]
    RENDER_FORMAT_MERMAID: _ClassVar[RenderFormat]
    RENDER_FORMAT_DOT: _ClassVar[RenderFormat]
PROMOTION_ACTION_UNSPECIFIED: PromotionAction
PROMOTION_ACTION_NONE: PromotionAction
PROMOTION_ACTION_COMMIT: PromotionAction
PROMOTION_ACTION_PULL_REQUEST: PromotionAction
RENDER_FORMAT_UNSPECIFIED: RenderFormat
RENDER_FORMAT_MERMAID: RenderFormat
RENDER_FORMAT_DOT: RenderFormat

class Policy(_message.Message):
    __slots__ = ("pre_action", "action", "post_action")
    PRE_ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    POST_ACTION_FIELD_NUMBER: _ClassVar[int]
    pre_action: str
    action: PromotionAction
    post_action: str
    def __init__(self, pre_action: _Optional[str] = ..., action: _Optional[_Union[PromotionAction, str]] = ..., post_action: _Optional[str] = ...) -> None: ...

class Hooks(_message.Message):
    __slots__ = ("on_start", "on_success", "on_fail")
    ON_START_FIELD_NUMBER: _ClassVar[int]
    ON_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ON_FAIL_FIELD_NUMBER: _ClassVar[int]
    on_start: str
    on_success: str
    on_fail: str
    def __init__(self, on_start: _Optional[str] = ..., on_success: _Optional[str] = ..., on_fail: _Optional[str] = ...) -> None: ...

class FlowStep(_message.Message):
    __slots__ = ("environment", "depends_on", "policy", "hooks")
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    HOOKS_FIELD_NUMBER: _ClassVar[int]
    environment: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    policy: Policy
    hooks: Hooks
    def __init__(self, environment: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., hooks: _Optional[_Union[Hooks, _Mapping]] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("name", "description", "trigger_environment", "trigger_workflow", "promotion_timeout", "hooks", "steps", "annotations", "version", "create_time", "update_time")
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    HOOKS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    trigger_environment: str
    trigger_workflow: str
    promotion_timeout: _duration_pb2.Duration
    hooks: Hooks
    steps: _containers.RepeatedCompositeFieldContainer[FlowStep]
    annotations: _containers.ScalarMap[str, str]
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., trigger_environment: _Optional[str] = ..., trigger_workflow: _Optional[str] = ..., promotion_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., hooks: _Optional[_Union[Hooks, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[FlowStep, _Mapping]]] = ..., annotations: _Optional[_Mapping[str, str]] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Wave(_message.Message):
    __slots__ = ("environments",)
    ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    environments: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, environments: _Optional[_Iterable[str]] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("waves",)
    WAVES_FIELD_NUMBER: _ClassVar[int]
    waves: _containers.RepeatedCompositeFieldContainer[Wave]
    def __init__(self, waves: _Optional[_Iterable[_Union[Wave, _Mapping]]] = ...) -> None: ...

class FlowViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class FlowEdit(_message.Message):
    __slots__ = ("add_environments", "remove_environment", "set_dependencies", "set_policy", "set_hooks", "set_settings")
    class AddEnvironments(_message.Message):
        __slots__ = ("after", "environments", "policy")
        AFTER_FIELD_NUMBER: _ClassVar[int]
        ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
        POLICY_FIELD_NUMBER: _ClassVar[int]
        after: str
        environments: _containers.RepeatedScalarFieldContainer[str]
        policy: Policy
        def __init__(self, after: _Optional[str] = ..., environments: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...
    class RemoveEnvironment(_message.Message):
        __slots__ = ("environment", "reconnect_to", "remove_downstream")
        ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
        RECONNECT_TO_FIELD_NUMBER: _ClassVar[int]
        REMOVE_DOWNSTREAM_FIELD_NUMBER: _ClassVar[int]
        environment: str
        reconnect_to: str
        remove_downstream: bool
        def __init__(self, environment: _Optional[str] = ..., reconnect_to: _Optional[str] = ..., remove_downstream: _Optional[bool] = ...) -> None: ...
    class SetDependencies(_message.Message):
        __slots__ = ("environment", "depends_on")
        ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
        DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
        environment: str
        depends_on: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, environment: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ...) -> None: ...
    class SetPolicy(_message.Message):
        __slots__ = ("environment", "policy")
        ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
        POLICY_FIELD_NUMBER: _ClassVar[int]
        environment: str
        policy: Policy
        def __init__(self, environment: _Optional[str] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...
    class SetHooks(_message.Message):
        __slots__ = ("environment", "hooks")
        ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
        HOOKS_FIELD_NUMBER: _ClassVar[int]
        environment: str
        hooks: Hooks
        def __init__(self, environment: _Optional[str] = ..., hooks: _Optional[_Union[Hooks, _Mapping]] = ...) -> None: ...
    class SetSettings(_message.Message):
        __slots__ = ("description", "trigger_environment", "promotion_timeout", "trigger_workflow")
        DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
        TRIGGER_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
        PROMOTION_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
        TRIGGER_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
        description: str
        trigger_environment: str
        promotion_timeout: _duration_pb2.Duration
        trigger_workflow: str
        def __init__(self, description: _Optional[str] = ..., trigger_environment: _Optional[str] = ..., promotion_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., trigger_workflow: _Optional[str] = ...) -> None: ...
    ADD_ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    SET_DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    SET_POLICY_FIELD_NUMBER: _ClassVar[int]
    SET_HOOKS_FIELD_NUMBER: _ClassVar[int]
    SET_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    add_environments: FlowEdit.AddEnvironments
    remove_environment: FlowEdit.RemoveEnvironment
    set_dependencies: FlowEdit.SetDependencies
    set_policy: FlowEdit.SetPolicy
    set_hooks: FlowEdit.SetHooks
    set_settings: FlowEdit.SetSettings
    def __init__(self, add_environments: _Optional[_Union[FlowEdit.AddEnvironments, _Mapping]] = ..., remove_environment: _Optional[_Union[FlowEdit.RemoveEnvironment, _Mapping]] = ..., set_dependencies: _Optional[_Union[FlowEdit.SetDependencies, _Mapping]] = ..., set_policy: _Optional[_Union[FlowEdit.SetPolicy, _Mapping]] = ..., set_hooks: _Optional[_Union[FlowEdit.SetHooks, _Mapping]] = ..., set_settings: _Optional[_Union[FlowEdit.SetSettings, _Mapping]] = ...) -> None: ...

class CreateFlowRequest(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ...) -> None: ...

class CreateFlowResponse(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ...) -> None: ...

class GetFlowRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetFlowResponse(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ...) -> None: ...

class ListFlowsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFlowsResponse(_message.Message):
    __slots__ = ("flows", "next_page_token")
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[Flow]
    next_page_token: str
    def __init__(self, flows: _Optional[_Iterable[_Union[Flow, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateFlowRequest(_message.Message):
    __slots__ = ("flow", "expected_version")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    expected_version: int
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdateFlowResponse(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ...) -> None: ...

class DeleteFlowRequest(_message.Message):
    __slots__ = ("name", "expected_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    expected_version: int
    def __init__(self, name: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DeleteFlowResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFlowVersionsRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFlowVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[Flow]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[Flow, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ValidateFlowRequest(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ...) -> None: ...

class ValidateFlowResponse(_message.Message):
    __slots__ = ("violations", "plan")
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    violations: _containers.RepeatedCompositeFieldContainer[FlowViolation]
    plan: Plan
    def __init__(self, violations: _Optional[_Iterable[_Union[FlowViolation, _Mapping]]] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ...) -> None: ...

class EditFlowRequest(_message.Message):
    __slots__ = ("name", "expected_version", "edits")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    EDITS_FIELD_NUMBER: _ClassVar[int]
    name: str
    expected_version: int
    edits: _containers.RepeatedCompositeFieldContainer[FlowEdit]
    def __init__(self, name: _Optional[str] = ..., expected_version: _Optional[int] = ..., edits: _Optional[_Iterable[_Union[FlowEdit, _Mapping]]] = ...) -> None: ...

class EditFlowResponse(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ...) -> None: ...

class CopyFlowRequest(_message.Message):
    __slots__ = ("source", "version", "new_name")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    source: str
    version: int
    new_name: str
    def __init__(self, source: _Optional[str] = ..., version: _Optional[int] = ..., new_name: _Optional[str] = ...) -> None: ...

class CopyFlowResponse(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ...) -> None: ...

class ImportFlowRequest(_message.Message):
    __slots__ = ("yaml", "replace")
    YAML_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    replace: bool
    def __init__(self, yaml: _Optional[str] = ..., replace: _Optional[bool] = ...) -> None: ...

class ImportFlowResponse(_message.Message):
    __slots__ = ("flow", "unchanged")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    unchanged: bool
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ..., unchanged: _Optional[bool] = ...) -> None: ...

class ExportFlowRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ExportFlowResponse(_message.Message):
    __slots__ = ("yaml",)
    YAML_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    def __init__(self, yaml: _Optional[str] = ...) -> None: ...

class RenderFlowRequest(_message.Message):
    __slots__ = ("name", "version", "release_id", "format")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    release_id: str
    format: RenderFormat
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., release_id: _Optional[str] = ..., format: _Optional[_Union[RenderFormat, str]] = ...) -> None: ...

class RenderFlowResponse(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...
