import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReleaseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELEASE_STATUS_UNSPECIFIED: _ClassVar[ReleaseStatus]
    RELEASE_STATUS_QUEUED: _ClassVar[ReleaseStatus]
    RELEASE_STATUS_RUNNING: _ClassVar[ReleaseStatus]
    RELEASE_STATUS_SUSPENDED: _ClassVar[ReleaseStatus]
    RELEASE_STATUS_TERMINATING: _ClassVar[ReleaseStatus]
    RELEASE_STATUS_SUCCEEDED: _ClassVar[ReleaseStatus]
    RELEASE_STATUS_FAILED: _ClassVar[ReleaseStatus]
    RELEASE_STATUS_TERMINATED: _ClassVar[ReleaseStatus]

class EnvironmentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENVIRONMENT_STATUS_UNSPECIFIED: _ClassVar[EnvironmentStatus]
    ENVIRONMENT_STATUS_PENDING: _ClassVar[EnvironmentStatus]
    ENVIRONMENT_STATUS_RUNNING: _ClassVar[EnvironmentStatus]
    ENVIRONMENT_STATUS_SUSPENDED: _ClassVar[EnvironmentStatus]
    ENVIRONMENT_STATUS_SUCCEEDED: _ClassVar[EnvironmentStatus]
    ENVIRONMENT_STATUS_FAILED: _ClassVar[EnvironmentStatus]
    ENVIRONMENT_STATUS_SKIPPED: _ClassVar[EnvironmentStatus]
    ENVIRONMENT_STATUS_TERMINATED: _ClassVar[EnvironmentStatus]

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATUS_UNSPECIFIED: _ClassVar[StepStatus]
    STEP_STATUS_PENDING: _ClassVar[StepStatus]
    STEP_STATUS_RUNNING: _ClassVar[StepStatus]
    STEP_STATUS_SUSPENDED: _ClassVar[StepStatus]
    STEP_STATUS_SUCCEEDED: _ClassVar[StepStatus]
    STEP_STATUS_FAILED: _ClassVar[StepStatus]
    STEP_STATUS_SKIPPED: _ClassVar[StepStatus]
    STEP_STATUS_TERMINATED: _ClassVar[StepStatus]

class StepKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_KIND_UNSPECIFIED: _ClassVar[StepKind]
    STEP_KIND_TRIGGER_WORKFLOW: _ClassVar[StepKind]
    STEP_KIND_ON_START: _ClassVar[StepKind]
    STEP_KIND_PRE_ACTION: _ClassVar[StepKind]
    STEP_KIND_ACTION: _ClassVar[StepKind]
    STEP_KIND_POST_ACTION: _ClassVar[StepKind]
    STEP_KIND_ON_SUCCESS: _ClassVar[StepKind]
    STEP_KIND_ON_FAIL: _ClassVar[StepKind]
    STEP_KIND_SYNC: _ClassVar[StepKind]
RELEASE_STATUS_UNSPECIFIED: ReleaseStatus
RELEASE_STATUS_QUEUED: ReleaseStatus
RELEASE_STATUS_RUNNING: ReleaseStatus
RELEASE_STATUS_SUSPENDED: ReleaseStatus
RELEASE_STATUS_TERMINATING: ReleaseStatus
RELEASE_STATUS_SUCCEEDED: ReleaseStatus
RELEASE_STATUS_FAILED: ReleaseStatus
RELEASE_STATUS_TERMINATED: ReleaseStatus
ENVIRONMENT_STATUS_UNSPECIFIED: EnvironmentStatus
ENVIRONMENT_STATUS_PENDING: EnvironmentStatus
ENVIRONMENT_STATUS_RUNNING: EnvironmentStatus
ENVIRONMENT_STATUS_SUSPENDED: EnvironmentStatus
ENVIRONMENT_STATUS_SUCCEEDED: EnvironmentStatus
ENVIRONMENT_STATUS_FAILED: EnvironmentStatus
ENVIRONMENT_STATUS_SKIPPED: EnvironmentStatus
ENVIRONMENT_STATUS_TERMINATED: EnvironmentStatus
STEP_STATUS_UNSPECIFIED: StepStatus
STEP_STATUS_PENDING: StepStatus
STEP_STATUS_RUNNING: StepStatus
STEP_STATUS_SUSPENDED: StepStatus
STEP_STATUS_SUCCEEDED: StepStatus
STEP_STATUS_FAILED: StepStatus
STEP_STATUS_SKIPPED: StepStatus
STEP_STATUS_TERMINATED: StepStatus
STEP_KIND_UNSPECIFIED: StepKind
STEP_KIND_TRIGGER_WORKFLOW: StepKind
STEP_KIND_ON_START: StepKind
STEP_KIND_PRE_ACTION: StepKind
STEP_KIND_ACTION: StepKind
STEP_KIND_POST_ACTION: StepKind
STEP_KIND_ON_SUCCESS: StepKind
STEP_KIND_ON_FAIL: StepKind
STEP_KIND_SYNC: StepKind

class StepRun(_message.Message):
    __slots__ = ("kind", "workflow", "status", "message", "start_time", "finish_time", "attempt", "commit_sha", "url", "pull_request_number", "approvals", "required_approvals")
    KIND_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    COMMIT_SHA_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    PULL_REQUEST_NUMBER_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    kind: StepKind
    workflow: str
    status: StepStatus
    message: str
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    attempt: int
    commit_sha: str
    url: str
    pull_request_number: int
    approvals: _containers.RepeatedCompositeFieldContainer[ApprovalDecision]
    required_approvals: int
    def __init__(self, kind: _Optional[_Union[StepKind, str]] = ..., workflow: _Optional[str] = ..., status: _Optional[_Union[StepStatus, str]] = ..., message: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., commit_sha: _Optional[str] = ..., url: _Optional[str] = ..., pull_request_number: _Optional[int] = ..., approvals: _Optional[_Iterable[_Union[ApprovalDecision, _Mapping]]] = ..., required_approvals: _Optional[int] = ...) -> None: ...

class ApprovalDecision(_message.Message):
    __slots__ = ("principal", "approve", "comment", "time")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    principal: str
    approve: bool
    comment: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, principal: _Optional[str] = ..., approve: _Optional[bool] = ..., comment: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnvironmentRun(_message.Message):
    __slots__ = ("environment", "depends_on", "status", "blocked_on", "attempt", "steps", "start_time", "finish_time", "message", "application")
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_ON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    environment: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    status: EnvironmentStatus
    blocked_on: _containers.RepeatedScalarFieldContainer[str]
    attempt: int
    steps: _containers.RepeatedCompositeFieldContainer[StepRun]
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    message: str
    application: str
    def __init__(self, environment: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[EnvironmentStatus, str]] = ..., blocked_on: _Optional[_Iterable[str]] = ..., attempt: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[StepRun, _Mapping]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., application: _Optional[str] = ...) -> None: ...

class ReleaseCounters(_message.Message):
    __slots__ = ("total", "succeeded", "running", "failed", "pending", "skipped", "terminated", "suspended", "awaiting_review")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_FIELD_NUMBER: _ClassVar[int]
    AWAITING_REVIEW_FIELD_NUMBER: _ClassVar[int]
    total: int
    succeeded: int
    running: int
    failed: int
    pending: int
    skipped: int
    terminated: int
    suspended: int
    awaiting_review: int
    def __init__(self, total: _Optional[int] = ..., succeeded: _Optional[int] = ..., running: _Optional[int] = ..., failed: _Optional[int] = ..., pending: _Optional[int] = ..., skipped: _Optional[int] = ..., terminated: _Optional[int] = ..., suspended: _Optional[int] = ..., awaiting_review: _Optional[int] = ...) -> None: ...

class Release(_message.Message):
    __slots__ = ("id", "product", "flow", "flow_version", "version", "status", "initiator", "environments", "counters", "create_time", "start_time", "finish_time", "message", "last_seq", "trigger_message", "hooks", "request_id", "source_commit", "actor", "terminated_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    FLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HOOKS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COMMIT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    product: str
    flow: str
    flow_version: int
    version: str
    status: ReleaseStatus
    initiator: str
    environments: _containers.RepeatedCompositeFieldContainer[EnvironmentRun]
    counters: ReleaseCounters
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    message: str
    last_seq: int
    trigger_message: str
    hooks: _containers.RepeatedCompositeFieldContainer[StepRun]
    request_id: str
    source_commit: str
    actor: str
    terminated_by: str
    def __init__(self, id: _Optional[str] = ..., product: _Optional[str] = ..., flow: _Optional[str] = ..., flow_version: _Optional[int] = ..., version: _Optional[str] = ..., status: _Optional[_Union[ReleaseStatus, str]] = ..., initiator: _Optional[str] = ..., environments: _Optional[_Iterable[_Union[EnvironmentRun, _Mapping]]] = ..., counters: _Optional[_Union[ReleaseCounters, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., last_seq: _Optional[int] = ..., trigger_message: _Optional[str] = ..., hooks: _Optional[_Iterable[_Union[StepRun, _Mapping]]] = ..., request_id: _Optional[str] = ..., source_commit: _Optional[str] = ..., actor: _Optional[str] = ..., terminated_by: _Optional[str] = ...) -> None: ...

class ReleaseEvent(_message.Message):
    __slots__ = ("release_id", "seq", "time", "snapshot", "release", "environment", "step", "heartbeat")
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    release_id: str
    seq: int
    time: _timestamp_pb2.Timestamp
    snapshot: Release
    release: ReleaseChange
    environment: EnvironmentChange
    step: StepChange
    heartbeat: Heartbeat
    def __init__(self, release_id: _Optional[str] = ..., seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot: _Optional[_Union[Release, _Mapping]] = ..., release: _Optional[_Union[ReleaseChange, _Mapping]] = ..., environment: _Optional[_Union[EnvironmentChange, _Mapping]] = ..., step: _Optional[_Union[StepChange, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class ReleaseChange(_message.Message):
    __slots__ = ("status", "message", "counters", "start_time", "finish_time", "terminated_by")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_BY_FIELD_NUMBER: _ClassVar[int]
    status: ReleaseStatus
    message: str
    counters: ReleaseCounters
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    terminated_by: str
    def __init__(self, status: _Optional[_Union[ReleaseStatus, str]] = ..., message: _Optional[str] = ..., counters: _Optional[_Union[ReleaseCounters, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., terminated_by: _Optional[str] = ...) -> None: ...

class EnvironmentChange(_message.Message):
    __slots__ = ("environment",)
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    environment: EnvironmentRun
    def __init__(self, environment: _Optional[_Union[EnvironmentRun, _Mapping]] = ...) -> None: ...

class StepChange(_message.Message):
    __slots__ = ("environment", "index", "step")
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    environment: str
    index: int
    step: StepRun
    def __init__(self, environment: _Optional[str] = ..., index: _Optional[int] = ..., step: _Optional[_Union[StepRun, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("latest_seq",)
    LATEST_SEQ_FIELD_NUMBER: _ClassVar[int]
    latest_seq: int
    def __init__(self, latest_seq: _Optional[int] = ...) -> None: ...

class TriggerReleaseRequest(_message.Message):
    __slots__ = ("flow", "product", "version", "request_id", "initiator", "message", "source_commit")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COMMIT_FIELD_NUMBER: _ClassVar[int]
    flow: str
    product: str
    version: str
    request_id: str
    initiator: str
    message: str
    source_commit: str
    def __init__(self, flow: _Optional[str] = ..., product: _Optional[str] = ..., version: _Optional[str] = ..., request_id: _Optional[str] = ..., initiator: _Optional[str] = ..., message: _Optional[str] = ..., source_commit: _Optional[str] = ...) -> None: ...

class TriggerReleaseResponse(_message.Message):
    __slots__ = ("release",)
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    release: Release
    def __init__(self, release: _Optional[_Union[Release, _Mapping]] = ...) -> None: ...

class GetReleaseRequest(_message.Message):
    __slots__ = ("release_id",)
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    release_id: str
    def __init__(self, release_id: _Optional[str] = ...) -> None: ...

class GetReleaseResponse(_message.Message):
    __slots__ = ("release",)
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    release: Release
    def __init__(self, release: _Optional[_Union[Release, _Mapping]] = ...) -> None: ...

class ListReleasesRequest(_message.Message):
    __slots__ = ("product", "flow", "status", "page_size", "page_token")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    product: str
    flow: str
    status: ReleaseStatus
    page_size: int
    page_token: str
    def __init__(self, product: _Optional[str] = ..., flow: _Optional[str] = ..., status: _Optional[_Union[ReleaseStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReleasesResponse(_message.Message):
    __slots__ = ("releases", "next_page_token")
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    releases: _containers.RepeatedCompositeFieldContainer[Release]
    next_page_token: str
    def __init__(self, releases: _Optional[_Iterable[_Union[Release, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class TerminateReleaseRequest(_message.Message):
    __slots__ = ("release_id", "reason")
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    release_id: str
    reason: str
    def __init__(self, release_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TerminateReleaseResponse(_message.Message):
    __slots__ = ("release",)
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    release: Release
    def __init__(self, release: _Optional[_Union[Release, _Mapping]] = ...) -> None: ...

class RetryReleaseRequest(_message.Message):
    __slots__ = ("release_id",)
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    release_id: str
    def __init__(self, release_id: _Optional[str] = ...) -> None: ...

class RetryReleaseResponse(_message.Message):
    __slots__ = ("release", "note")
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    release: Release
    note: str
    def __init__(self, release: _Optional[_Union[Release, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class ApproveEnvironmentRequest(_message.Message):
    __slots__ = ("release_id", "environment", "approve", "comment")
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    release_id: str
    environment: str
    approve: bool
    comment: str
    def __init__(self, release_id: _Optional[str] = ..., environment: _Optional[str] = ..., approve: _Optional[bool] = ..., comment: _Optional[str] = ...) -> None: ...

class ApproveEnvironmentResponse(_message.Message):
    __slots__ = ("release",)
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    release: Release
    def __init__(self, release: _Optional[_Union[Release, _Mapping]] = ...) -> None: ...

class WatchReleaseRequest(_message.Message):
    __slots__ = ("release_id", "after_seq")
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    release_id: str
    after_seq: int
    def __init__(self, release_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class WatchReleaseResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: ReleaseEvent
    def __init__(self, event: _Optional[_Union[ReleaseEvent, _Mapping]] = ...) -> None: ...

class WatchReleasesRequest(_message.Message):
    __slots__ = ("product", "flow", "after_cursor")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    product: str
    flow: str
    after_cursor: str
    def __init__(self, product: _Optional[str] = ..., flow: _Optional[str] = ..., after_cursor: _Optional[str] = ...) -> None: ...

class WatchReleasesResponse(_message.Message):
    __slots__ = ("event", "cursor")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    event: ReleaseEvent
    cursor: str
    def __init__(self, event: _Optional[_Union[ReleaseEvent, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...
