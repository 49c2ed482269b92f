"""Every message and enum of package promoflow.v1, in one namespace.

    from promoflow import pb
    pb.Environment(name="dev", kind=pb.ENVIRONMENT_KIND_PRODUCTION)

The modules themselves are generated (see clients/python/generate) under
``promoflow._gen.v1``.
"""

# ruff: noqa: F401,F403
from ._gen.v1.access_pb2 import *
from ._gen.v1.environment_pb2 import *
from ._gen.v1.workflow_pb2 import *
from ._gen.v1.product_pb2 import *
from ._gen.v1.flow_pb2 import *
from ._gen.v1.release_pb2 import *
from ._gen.v1 import (
    access_pb2_grpc,
    environment_pb2_grpc,
    flow_pb2_grpc,
    product_pb2_grpc,
    release_pb2_grpc,
    workflow_pb2_grpc,
)

FINAL_RELEASE_STATUSES = frozenset(
    {RELEASE_STATUS_SUCCEEDED, RELEASE_STATUS_FAILED, RELEASE_STATUS_TERMINATED}
)
