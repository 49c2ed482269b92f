"""The calls shared by Client and AsyncClient.

Each method builds its request and hands it to ``self._unary`` (or
``self._paginate``), which the sync client runs at once and the asyncio
client wraps in a coroutine (or an async iterator), so one definition serves
both: ``client.get_flow("x")`` and ``await aclient.get_flow("x")``.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import grpc
import grpc.aio

from . import pb
from ._convert import duration, enum_value, message, messages

DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Reconnect quickly after a server restart (the default backoff reaches
    # two minutes), so resumed watches do not stall.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


def _application(value: Any) -> pb.Application:
    if isinstance(value, (tuple, list)):
        return pb.Application(**dict(zip(("environment", "name", "version"), value)))
    app = message(pb.Application, value)
    assert app is not None
    return app


def _promotion_flow(value: Any) -> pb.ProductPromotionFlow:
    if isinstance(value, str):
        return pb.ProductPromotionFlow(flow=value)
    pf = message(pb.ProductPromotionFlow, value)
    assert pf is not None
    return pf


def _step(value: Any) -> pb.FlowStep:
    step = message(pb.FlowStep, value)
    assert step is not None
    return step


class _Api:
    """Request building for every promoflow call (see the subclasses)."""

    # Implemented by the sync and asyncio clients.
    def _unary(self, service: str, method: str, request: Any, extract: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    def _paginate(self, service: str, method: str, request: Any, items: str) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------ environments

    def create_environment(
        self,
        name: str,
        *,
        kind: Any = None,
        description: str = "",
        labels: Optional[Mapping[str, str]] = None,
    ) -> pb.Environment:
        """Creates an environment; `kind` is "production", "non_production" or an EnvironmentKind."""
        env = pb.Environment(
            name=name,
            kind=enum_value(pb.EnvironmentKind, kind, "ENVIRONMENT_KIND_"),
            description=description,
            labels=dict(labels or {}),
        )
        return self._unary(
            "environment", "CreateEnvironment", pb.CreateEnvironmentRequest(environment=env), lambda r: r.environment
        )

    def get_environment(self, name: str) -> pb.Environment:
        return self._unary(
            "environment", "GetEnvironment", pb.GetEnvironmentRequest(name=name), lambda r: r.environment
        )

    def list_environments(self, *, page_size: int = 0) -> Iterator[pb.Environment]:
        """Every environment, ordered by name (pages are fetched as needed)."""
        return self._paginate(
            "environment", "ListEnvironments", pb.ListEnvironmentsRequest(page_size=page_size), "environments"
        )

    def update_environment(self, environment: Any, *, expected_version: Optional[int] = None) -> pb.Environment:
        """Saves `environment` (read, modify, send back); expected_version defaults to its version."""
        env = message(pb.Environment, environment)
        assert env is not None
        req = pb.UpdateEnvironmentRequest(
            environment=env, expected_version=env.version if expected_version is None else expected_version
        )
        return self._unary("environment", "UpdateEnvironment", req, lambda r: r.environment)

    def delete_environment(self, name: str, *, expected_version: int = 0) -> None:
        return self._unary(
            "environment",
            "DeleteEnvironment",
            pb.DeleteEnvironmentRequest(name=name, expected_version=expected_version),
            lambda r: None,
        )

    # --------------------------------------------------------------- workflows

    def create_workflow(
        self,
        name: str,
        *,
        description: str = "",
        wait: Any = None,
        approval: Any = None,
        http: Any = None,
        command: Any = None,
    ) -> pb.Workflow:
        """Creates a workflow of exactly one kind.

        wait: seconds, a timedelta or a WaitWorkflow; approval: True, a
        timeout, or an ApprovalWorkflow; http: a URL or an HttpWorkflow /
        dict; command: an argv list or a CommandWorkflow / dict.
        """
        given = [k for k, v in (("wait", wait), ("approval", approval), ("http", http), ("command", command))
                 if v is not None and v is not False]
        if len(given) > 1:
            raise ValueError(f"a workflow has exactly one kind; got {', '.join(given)}")
        wf = pb.Workflow(name=name, description=description)
        if wait is not None:
            if isinstance(wait, (pb.WaitWorkflow, dict)):
                wf.wait.CopyFrom(message(pb.WaitWorkflow, wait))
            else:
                wf.wait.duration.CopyFrom(duration(wait))
        if approval is not None and approval is not False:
            if approval is True:
                wf.approval.SetInParent()
            elif isinstance(approval, (pb.ApprovalWorkflow, dict)):
                wf.approval.CopyFrom(message(pb.ApprovalWorkflow, approval))
            else:
                wf.approval.timeout.CopyFrom(duration(approval))
        if http is not None:
            if isinstance(http, str):
                wf.http.url = http
            else:
                wf.http.CopyFrom(message(pb.HttpWorkflow, http))
        if command is not None:
            if isinstance(command, (list, tuple)):
                wf.command.argv.extend(command)
            else:
                wf.command.CopyFrom(message(pb.CommandWorkflow, command))
        return self._unary("workflow", "CreateWorkflow", pb.CreateWorkflowRequest(workflow=wf), lambda r: r.workflow)

    def get_workflow(self, name: str) -> pb.Workflow:
        return self._unary("workflow", "GetWorkflow", pb.GetWorkflowRequest(name=name), lambda r: r.workflow)

    def list_workflows(self, *, page_size: int = 0) -> Iterator[pb.Workflow]:
        return self._paginate("workflow", "ListWorkflows", pb.ListWorkflowsRequest(page_size=page_size), "workflows")

    def update_workflow(self, workflow: Any, *, expected_version: Optional[int] = None) -> pb.Workflow:
        wf = message(pb.Workflow, workflow)
        assert wf is not None
        req = pb.UpdateWorkflowRequest(
            workflow=wf, expected_version=wf.version if expected_version is None else expected_version
        )
        return self._unary("workflow", "UpdateWorkflow", req, lambda r: r.workflow)

    def delete_workflow(self, name: str, *, expected_version: int = 0) -> None:
        return self._unary(
            "workflow",
            "DeleteWorkflow",
            pb.DeleteWorkflowRequest(name=name, expected_version=expected_version),
            lambda r: None,
        )

    # ---------------------------------------------------------------- products

    def create_product(
        self,
        name: str,
        *,
        applications: Iterable[Any] = (),
        description: str = "",
        concurrency: Any = None,
        promotion_flows: Iterable[Any] = (),
    ) -> pb.Product:
        """Creates a product.

        applications: Application messages, dicts, or (environment, name[,
        version]) tuples; promotion_flows: flow names, dicts or
        ProductPromotionFlow messages; concurrency: "queue" or "terminate".
        """
        product = pb.Product(
            name=name,
            description=description,
            applications=[_application(a) for a in applications],
            concurrency=enum_value(pb.Concurrency, concurrency, "CONCURRENCY_"),
            promotion_flows=[_promotion_flow(f) for f in promotion_flows],
        )
        return self._unary(
            "product", "CreateProduct", pb.CreateProductRequest(product=product), lambda r: r.product
        )

    def get_product(self, name: str) -> pb.Product:
        return self._unary("product", "GetProduct", pb.GetProductRequest(name=name), lambda r: r.product)

    def list_products(self, *, page_size: int = 0) -> Iterator[pb.Product]:
        return self._paginate("product", "ListProducts", pb.ListProductsRequest(page_size=page_size), "products")

    def update_product(self, product: Any, *, expected_version: Optional[int] = None) -> pb.Product:
        p = message(pb.Product, product)
        assert p is not None
        req = pb.UpdateProductRequest(
            product=p, expected_version=p.version if expected_version is None else expected_version
        )
        return self._unary("product", "UpdateProduct", req, lambda r: r.product)

    def delete_product(self, name: str, *, expected_version: int = 0) -> None:
        return self._unary(
            "product",
            "DeleteProduct",
            pb.DeleteProductRequest(name=name, expected_version=expected_version),
            lambda r: None,
        )

    def report_deployment(
        self,
        product: str,
        environment: str,
        version: str,
        *,
        commit: Any = None,
        request_id: str = "",
    ) -> pb.ReportDeploymentResponse:
        """Records a deployed version; the response's `release` is set when it triggered one."""
        req = pb.ReportDeploymentRequest(
            product=product,
            environment=environment,
            version=version,
            commit=message(pb.Commit, commit),
            request_id=request_id,
        )
        return self._unary("product", "ReportDeployment", req, lambda r: r)

    # ------------------------------------------------------------------- flows

    @staticmethod
    def _flow(
        name: str,
        trigger_environment: str,
        steps: Iterable[Any],
        description: str,
        trigger_workflow: str,
        promotion_timeout: Any,
        hooks: Any,
        annotations: Optional[Mapping[str, str]],
    ) -> pb.Flow:
        flow = pb.Flow(
            name=name,
            description=description,
            trigger_environment=trigger_environment,
            trigger_workflow=trigger_workflow,
            hooks=message(pb.Hooks, hooks),
            steps=[_step(s) for s in steps],
            annotations=dict(annotations or {}),
        )
        if promotion_timeout is not None:
            flow.promotion_timeout.CopyFrom(duration(promotion_timeout, allow_zero=True))
        return flow

    def create_flow(
        self,
        name: str,
        *,
        trigger_environment: str,
        steps: Iterable[Any] = (),
        description: str = "",
        trigger_workflow: str = "",
        promotion_timeout: Any = None,
        hooks: Any = None,
        annotations: Optional[Mapping[str, str]] = None,
    ) -> pb.Flow:
        """Creates a flow at version 1. steps: FlowStep messages or dicts
        such as ``{"environment": "qa", "depends_on": ["dev"], "policy": {"post_action": "soak"}}``."""
        flow = self._flow(
            name, trigger_environment, steps, description, trigger_workflow, promotion_timeout, hooks, annotations
        )
        return self._unary("flow", "CreateFlow", pb.CreateFlowRequest(flow=flow), lambda r: r.flow)

    def get_flow(self, name: str, *, version: int = 0) -> pb.Flow:
        return self._unary("flow", "GetFlow", pb.GetFlowRequest(name=name, version=version), lambda r: r.flow)

    def list_flows(self, *, page_size: int = 0) -> Iterator[pb.Flow]:
        return self._paginate("flow", "ListFlows", pb.ListFlowsRequest(page_size=page_size), "flows")

    def list_flow_versions(self, name: str, *, page_size: int = 0) -> Iterator[pb.Flow]:
        return self._paginate(
            "flow", "ListFlowVersions", pb.ListFlowVersionsRequest(name=name, page_size=page_size), "versions"
        )

    def update_flow(self, flow: Any, *, expected_version: Optional[int] = None) -> pb.Flow:
        f = message(pb.Flow, flow)
        assert f is not None
        req = pb.UpdateFlowRequest(flow=f, expected_version=f.version if expected_version is None else expected_version)
        return self._unary("flow", "UpdateFlow", req, lambda r: r.flow)

    def delete_flow(self, name: str, *, expected_version: int = 0) -> None:
        return self._unary(
            "flow", "DeleteFlow", pb.DeleteFlowRequest(name=name, expected_version=expected_version), lambda r: None
        )

    def validate_flow(self, flow: Any) -> pb.ValidateFlowResponse:
        """Dry run: the response lists every violation, or the plan when there is none."""
        return self._unary(
            "flow", "ValidateFlow", pb.ValidateFlowRequest(flow=message(pb.Flow, flow)), lambda r: r
        )

    def edit_flow(self, name: str, edits: Sequence[Any], *, expected_version: int) -> pb.Flow:
        """Applies edits (see promoflow.edits) atomically as one new version."""
        req = pb.EditFlowRequest(
            name=name, expected_version=expected_version, edits=messages(pb.FlowEdit, edits)
        )
        return self._unary("flow", "EditFlow", req, lambda r: r.flow)

    def copy_flow(self, source: str, new_name: str, *, version: int = 0) -> pb.Flow:
        return self._unary(
            "flow",
            "CopyFlow",
            pb.CopyFlowRequest(source=source, version=version, new_name=new_name),
            lambda r: r.flow,
        )

    def import_flow(self, yaml: str, *, replace: bool = False) -> pb.Flow:
        """Creates (or with replace=True, replaces) a flow from Codefresh PromotionFlow YAML."""
        return self._unary("flow", "ImportFlow", pb.ImportFlowRequest(yaml=yaml, replace=replace), lambda r: r.flow)

    def export_flow(self, name: str, *, version: int = 0) -> str:
        return self._unary("flow", "ExportFlow", pb.ExportFlowRequest(name=name, version=version), lambda r: r.yaml)

    def render_flow(
        self, name: str = "", *, version: int = 0, release_id: str = "", format: Any = None
    ) -> str:
        """The flow as a diagram: format "mermaid" (default) or "dot"."""
        req = pb.RenderFlowRequest(
            name=name,
            version=version,
            release_id=release_id,
            format=enum_value(pb.RenderFormat, format, "RENDER_FORMAT_"),
        )
        return self._unary("flow", "RenderFlow", req, lambda r: r.text)

    # ---------------------------------------------------------------- releases

    def trigger_release(
        self,
        flow: str,
        product: str,
        *,
        version: str = "",
        request_id: str = "",
        initiator: str = "",
        message: str = "",
    ) -> pb.Release:
        req = pb.TriggerReleaseRequest(
            flow=flow,
            product=product,
            version=version,
            request_id=request_id,
            initiator=initiator,
            message=message,
        )
        return self._unary("release", "TriggerRelease", req, lambda r: r.release)

    def get_release(self, release_id: str) -> pb.Release:
        return self._unary(
            "release", "GetRelease", pb.GetReleaseRequest(release_id=release_id), lambda r: r.release
        )

    def list_releases(
        self, *, product: str = "", flow: str = "", status: Any = None, page_size: int = 0
    ) -> Iterator[pb.Release]:
        """Releases, newest first; status: "running", "succeeded", … or a ReleaseStatus."""
        req = pb.ListReleasesRequest(
            product=product,
            flow=flow,
            status=enum_value(pb.ReleaseStatus, status, "RELEASE_STATUS_"),
            page_size=page_size,
        )
        return self._paginate("release", "ListReleases", req, "releases")

    def terminate_release(self, release_id: str, *, reason: str = "") -> pb.Release:
        return self._unary(
            "release",
            "TerminateRelease",
            pb.TerminateReleaseRequest(release_id=release_id, reason=reason),
            lambda r: r.release,
        )

    def retry_release(self, release_id: str) -> pb.Release:
        return self._unary(
            "release", "RetryRelease", pb.RetryReleaseRequest(release_id=release_id), lambda r: r.release
        )

    def approve_environment(
        self, release_id: str, environment: str = "", *, approve: bool = True, comment: str = ""
    ) -> pb.Release:
        """Approves (or with approve=False rejects) an environment awaiting approval."""
        req = pb.ApproveEnvironmentRequest(
            release_id=release_id, environment=environment, approve=approve, comment=comment
        )
        return self._unary("release", "ApproveEnvironment", req, lambda r: r.release)

    def reject_environment(self, release_id: str, environment: str = "", *, comment: str = "") -> pb.Release:
        return self.approve_environment(release_id, environment, approve=False, comment=comment)


def parse_target(
    target: str, credentials: Optional[grpc.ChannelCredentials]
) -> tuple[str, Optional[grpc.ChannelCredentials]]:
    """The gRPC target and credentials of a server address, as the CLI and the
    TypeScript client take it: ``host:port`` and ``http://host:port`` are
    plaintext, ``https://host:port`` is TLS (with the system's roots unless
    ``credentials`` are given). Other gRPC targets (``dns:///…``,
    ``unix:…``) pass through."""
    lowered = target.lower()
    for scheme, tls in (("http://", False), ("https://", True)):
        if lowered.startswith(scheme):
            rest = target[len(scheme):].rstrip("/")
            if "/" in rest:
                raise ValueError(f"{target!r}: a server address has no path (give {scheme}host:port)")
            if tls and credentials is None:
                credentials = grpc.ssl_channel_credentials()
            if not tls and credentials is not None:
                raise ValueError(f"{target!r} is plaintext http://, but TLS credentials were given: use https://")
            return rest, credentials
    return target, credentials


def resolve_token(token: Optional[str]) -> Optional[str]:
    """``token``, or ``PROMOFLOW_TOKEN`` when None (None when unset or empty)."""
    import os

    if token is None:
        token = os.environ.get("PROMOFLOW_TOKEN") or None
    return token.strip() if token else None


def _with_bearer(metadata: Any, token: str) -> list[tuple[str, str]]:
    """Call metadata plus the bearer header, unless the call brings its own."""
    out = list(metadata or [])
    if not any(k == "authorization" for k, _ in out):
        out.append(("authorization", f"Bearer {token}"))
    return out


class _SyncDetails(
    collections.namedtuple(
        "_SyncDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class SyncBearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the token to every call of a channel, the generated stubs' too."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, d: Any) -> Any:
        return _SyncDetails(
            d.method,
            d.timeout,
            _with_bearer(d.metadata, self._token),
            d.credentials,
            getattr(d, "wait_for_ready", None),
            getattr(d, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, d: Any, request: Any) -> Any:
        return continuation(self._details(d), request)

    def intercept_unary_stream(self, continuation: Any, d: Any, request: Any) -> Any:
        return continuation(self._details(d), request)

    def intercept_stream_unary(self, continuation: Any, d: Any, requests: Any) -> Any:
        return continuation(self._details(d), requests)

    def intercept_stream_stream(self, continuation: Any, d: Any, requests: Any) -> Any:
        return continuation(self._details(d), requests)


def _aio_details(d: Any, token: str) -> Any:
    return grpc.aio.ClientCallDetails(
        d.method, d.timeout, _with_bearer(d.metadata, token), d.credentials, d.wait_for_ready
    )


class _AioUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, d: Any, request: Any) -> Any:
        return await continuation(_aio_details(d, self._token), request)


class _AioUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, d: Any, request: Any) -> Any:
        return await continuation(_aio_details(d, self._token), request)


def aio_bearer(token: str) -> list[Any]:
    """The asyncio interceptors that add the token to every call."""
    return [_AioUnaryUnary(token), _AioUnaryStream(token)]


def with_token(metadata: Optional[Sequence[tuple[str, str]]], token: Optional[str]) -> list[tuple[str, str]]:
    """``metadata`` plus ``authorization: Bearer <token>``; a token of None
    is read from ``PROMOFLOW_TOKEN`` (none when unset or empty)."""
    import os

    out = list(metadata or [])
    if token is None:
        token = os.environ.get("PROMOFLOW_TOKEN") or None
    if token:
        out.append(("authorization", f"Bearer {token.strip()}"))
    return out
