"""Python client of promoflow, the gRPC service that promotes application
versions through graphs of environments.

    from promoflow import Client
    with Client("127.0.0.1:50051") as pf:
        release = pf.trigger_release("parallel", "demo-trioapp")
        for event in pf.watch_release(release.id):
            print(event.seq, event.WhichOneof("change"))

Messages and enums: :mod:`promoflow.pb`; flow edits: :mod:`promoflow.edits`;
exceptions: :mod:`promoflow.errors`.
"""

from . import edits, errors, pb
from .aio import AsyncClient
from .client import Client
from .tls import tls_credentials
from .errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PromoflowError,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "edits",
    "errors",
    "pb",
    "Aborted",
    "AlreadyExists",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PromoflowError",
    "Unavailable",
    "tls_credentials",
]
