"""Conversions from convenient Python values to promoflow messages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Optional, TypeVar

from google.protobuf import duration_pb2, json_format
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


def message(cls: type[M], value: Any) -> Optional[M]:
    """None, a message of `cls`, or a dict (proto field names or JSON names)."""
    if value is None:
        return None
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return json_format.ParseDict(value, cls())
    raise TypeError(f"expected {cls.__name__} or dict, got {type(value).__name__}")


def messages(cls: type[M], values: Any) -> list[M]:
    return [m for m in (message(cls, v) for v in (values or ())) if m is not None]


def duration(value: Any, *, allow_zero: bool = False) -> duration_pb2.Duration:
    """Seconds (int/float), a timedelta, a Duration, or a string like "2s"/"1.5s"."""
    d = duration_pb2.Duration()
    if isinstance(value, duration_pb2.Duration):
        d.CopyFrom(value)
    elif isinstance(value, timedelta):
        d.FromTimedelta(value)
    elif isinstance(value, (int, float)):
        d.FromNanoseconds(int(round(value * 1e9)))
    elif isinstance(value, str):
        d.FromJsonString(value)
    else:
        raise TypeError(f"expected a duration, got {type(value).__name__}")
    if not allow_zero and d.seconds == 0 and d.nanos == 0:
        raise ValueError("a duration must be positive")
    return d


def enum_value(enum: Any, value: Any, prefix: str) -> int:
    """An enum number from an int, the full name or the short name.

    enum_value(pb.EnvironmentKind, "production", "ENVIRONMENT_KIND_") -> 1
    """
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        name = value.upper().replace("-", "_")
        if not name.startswith(prefix):
            name = prefix + name
        return int(enum.Value(name))
    raise TypeError(f"expected an enum name or number, got {type(value).__name__}")
