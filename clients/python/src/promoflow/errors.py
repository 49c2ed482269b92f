"""Typed exceptions for promoflow's gRPC status codes.

Every failed call raises a :class:`PromoflowError` subclass chosen by the
status code (see common.proto, "Errors"). INVALID_ARGUMENT errors carry the
``google.rpc.BadRequest`` field violations of the ``grpc-status-details-bin``
trailer as :attr:`PromoflowError.violations`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "FieldViolation",
    "PromoflowError",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "from_rpc_error",
]

_DETAILS_KEY = "grpc-status-details-bin"


class FieldViolation(NamedTuple):
    """One problem of a request: the field path and what is wrong with it."""

    field: str
    description: str


class PromoflowError(Exception):
    """A promoflow call failed.

    Attributes:
        code: the :class:`grpc.StatusCode`.
        message: the server's message (meant for people).
        violations: for INVALID_ARGUMENT, every field violation of the
            ``google.rpc.BadRequest`` detail, as ``(field, description)``
            pairs; empty otherwise.
        status: the decoded ``google.rpc.Status`` of the trailer, or None.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: Optional[grpc.StatusCode] = None,
        violations: Optional[list[FieldViolation]] = None,
        status: Optional[status_pb2.Status] = None,
    ) -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.violations: list[FieldViolation] = list(violations or [])
        self.status = status
        text = f"{self.code.name}: {message}"
        if self.violations:
            text += "".join(f"\n  {v.field}: {v.description}" for v in self.violations)
        super().__init__(text)

    def violation_fields(self) -> list[str]:
        """The field paths of :attr:`violations`, in order."""
        return [v.field for v in self.violations]


class Cancelled(PromoflowError):
    code = grpc.StatusCode.CANCELLED


class Unknown(PromoflowError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(PromoflowError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(PromoflowError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(PromoflowError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(PromoflowError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(PromoflowError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(PromoflowError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(PromoflowError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(PromoflowError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(PromoflowError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(PromoflowError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(PromoflowError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(PromoflowError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(PromoflowError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(PromoflowError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[PromoflowError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def _rich_status(call: Any) -> Optional[status_pb2.Status]:
    """The google.rpc.Status of a failed call's trailer, or None."""
    try:
        return rpc_status.from_call(call)
    except (ValueError, TypeError, AttributeError):
        pass
    # grpcio-status refuses a trailer whose message differs from the status
    # line; decode it anyway (the details are what matter here).
    try:
        metadata = call.trailing_metadata() or ()
    except Exception:  # pragma: no cover - defensive
        return None
    for item in metadata:
        key, value = item[0], item[1]
        if key == _DETAILS_KEY and isinstance(value, (bytes, bytearray)):
            try:
                return status_pb2.Status.FromString(bytes(value))
            except Exception:  # pragma: no cover - corrupt trailer
                return None
    return None


def _violations(status: Optional[status_pb2.Status]) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if status is None:
        return out
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
    return out


def from_rpc_error(error: grpc.RpcError) -> PromoflowError:
    """Converts a grpc (sync or asyncio) RpcError into a PromoflowError."""
    code_fn = getattr(error, "code", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details_fn = getattr(error, "details", None)
    message = (details_fn() if callable(details_fn) else None) or str(error)
    status = _rich_status(error)
    cls = _BY_CODE.get(code, PromoflowError)
    return cls(message, code=code, violations=_violations(status), status=status)
