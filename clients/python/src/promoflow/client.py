"""The synchronous promoflow client."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Optional, Sequence

import grpc

from . import pb
from ._base import DEFAULT_CHANNEL_OPTIONS, parse_target, SyncBearer, _Api, resolve_token, with_token
from ._watch import Resume
from .errors import from_rpc_error

Metadata = Sequence[tuple[str, str]]


class Stubs:
    """The generated gRPC stubs of one channel, for calls the wrapper does not cover."""

    def __init__(self, channel: Any) -> None:
        self.environment = pb.environment_pb2_grpc.EnvironmentServiceStub(channel)
        self.workflow = pb.workflow_pb2_grpc.WorkflowServiceStub(channel)
        self.product = pb.product_pb2_grpc.ProductServiceStub(channel)
        self.flow = pb.flow_pb2_grpc.FlowServiceStub(channel)
        self.release = pb.release_pb2_grpc.ReleaseServiceStub(channel)
        self.token = pb.access_pb2_grpc.TokenServiceStub(channel)
        self.audit = pb.access_pb2_grpc.AuditServiceStub(channel)


class Client(_Api):
    """A blocking client of one promoflow server.

        with Client("127.0.0.1:50051") as pf:
            pf.create_environment("dev")

    Args:
        target: the server: ``host:port`` or ``http://host:port`` (plaintext),
            ``https://host:port`` (TLS), or any gRPC target.
        credentials: channel credentials for TLS; None = plaintext.
        timeout: deadline in seconds of each unary call (None = none).
        metadata: extra metadata sent with every call.
        token: the API token (``pf_…``) sent as ``authorization: Bearer``
            with every call; None reads ``PROMOFLOW_TOKEN`` (no token when
            unset). See the server's README, "Security".
        options: extra gRPC channel options.
    """

    def __init__(
        self,
        target: str,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        timeout: Optional[float] = 30.0,
        metadata: Optional[Metadata] = None,
        options: Sequence[tuple[str, Any]] = (),
        token: Optional[str] = None,
    ) -> None:
        opts = list(DEFAULT_CHANNEL_OPTIONS) + list(options)
        target, credentials = parse_target(target, credentials)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        bearer = resolve_token(token)
        if bearer:
            # The token rides on every call of the channel, `stubs` included.
            self._channel = grpc.intercept_channel(self._channel, SyncBearer(bearer))
        self.target = target
        self.timeout = timeout
        self.metadata = with_token(metadata, token)
        self.stubs = Stubs(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -------------------------------------------------------------- plumbing

    def _unary(self, service: str, method: str, request: Any, extract: Callable[[Any], Any]) -> Any:
        fn = getattr(getattr(self.stubs, service), method)
        try:
            response = fn(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return extract(response)

    def _paginate(self, service: str, method: str, request: Any, items: str) -> Iterator[Any]:
        while True:
            response = self._unary(service, method, request, lambda r: r)
            yield from getattr(response, items)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    # --------------------------------------------------------------- streams

    def watch_release(
        self,
        release_id: str,
        after_seq: int = 0,
        *,
        heartbeats: bool = False,
        reconnect_timeout: float = 60.0,
    ) -> Iterator[pb.ReleaseEvent]:
        """Yields the release's events in seq order until the release is final.

        With after_seq 0 the first event is a snapshot of the release. When
        the connection drops (UNAVAILABLE: the server restarted or is
        unreachable) the watch reconnects with after_seq = the last seq it
        yielded, so there is no gap and no duplicate; it gives up with
        :class:`promoflow.errors.Unavailable` after `reconnect_timeout`
        seconds without success. Heartbeats are skipped unless `heartbeats`.
        """
        resume = Resume(after_seq, reconnect_timeout)
        while True:
            call = self.stubs.release.WatchRelease(
                pb.WatchReleaseRequest(release_id=release_id, after_seq=resume.last_seq),
                metadata=self.metadata,
            )
            try:
                for response in call:
                    event = response.event
                    if resume.received(event) or heartbeats:
                        yield event
                return  # the stream ended with OK: the release is final
            except grpc.RpcError as e:
                delay = resume.retry_delay(e)
                if delay is None:
                    raise from_rpc_error(e) from e
                time.sleep(delay)
            finally:
                call.cancel()

    def wait_release(self, release_id: str, *, reconnect_timeout: float = 60.0) -> pb.Release:
        """Blocks until the release is final and returns it."""
        for _ in self.watch_release(release_id, reconnect_timeout=reconnect_timeout):
            pass
        return self.get_release(release_id)

    def watch_releases(
        self,
        *,
        product: str = "",
        flow: str = "",
        after_cursor: str = "",
        reconnect_timeout: float = 60.0,
    ) -> Iterator[pb.WatchReleasesResponse]:
        """Yields the events of every matching release (with their cursors), forever;
        reconnects from the last cursor on UNAVAILABLE. Heartbeats are included."""
        resume = Resume(0, reconnect_timeout)
        cursor = after_cursor
        while True:
            call = self.stubs.release.WatchReleases(
                pb.WatchReleasesRequest(product=product, flow=flow, after_cursor=cursor),
                metadata=self.metadata,
            )
            try:
                for response in call:
                    resume.received(response.event)
                    cursor = response.cursor or cursor
                    yield response
                return
            except grpc.RpcError as e:
                delay = resume.retry_delay(e)
                if delay is None:
                    raise from_rpc_error(e) from e
                time.sleep(delay)
            finally:
                call.cancel()
