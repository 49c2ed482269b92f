"""The asyncio promoflow client (grpc.aio)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Optional, Sequence

import grpc
import grpc.aio

from . import pb
from ._base import DEFAULT_CHANNEL_OPTIONS, parse_target, _Api, aio_bearer, resolve_token, with_token
from ._watch import Resume
from .client import Stubs
from .errors import from_rpc_error

Metadata = Sequence[tuple[str, str]]


class AsyncClient(_Api):
    """An asyncio client of one promoflow server: the methods of
    :class:`promoflow.Client`, awaited; list and watch calls are async
    iterators.

        async with AsyncClient("127.0.0.1:50051") as pf:
            release = await pf.trigger_release("parallel", "demo-trioapp")
            async for event in pf.watch_release(release.id):
                ...
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
        bearer = resolve_token(token)
        # The token rides on every call of the channel, `stubs` included.
        icpt = aio_bearer(bearer) if bearer else None
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=opts, interceptors=icpt)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=opts, interceptors=icpt)
        self.target = target
        self.timeout = timeout
        self.metadata = with_token(metadata, token)
        self.stubs = Stubs(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -------------------------------------------------------------- plumbing

    def _unary(self, service: str, method: str, request: Any, extract: Callable[[Any], Any]) -> Any:
        fn = getattr(getattr(self.stubs, service), method)

        async def run() -> Any:
            try:
                response = await fn(request, timeout=self.timeout, metadata=self.metadata)
            except grpc.RpcError as e:
                raise from_rpc_error(e) from e
            return extract(response)

        return run()

    async def _paginate(self, service: str, method: str, request: Any, items: str) -> AsyncIterator[Any]:
        while True:
            response = await self._unary(service, method, request, lambda r: r)
            for item in getattr(response, items):
                yield item
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    async def reject_environment(  # type: ignore[override]
        self, release_id: str, environment: str = "", *, comment: str = ""
    ) -> pb.Release:
        return await self.approve_environment(release_id, environment, approve=False, comment=comment)

    # --------------------------------------------------------------- streams

    async def watch_release(
        self,
        release_id: str,
        after_seq: int = 0,
        *,
        heartbeats: bool = False,
        reconnect_timeout: float = 60.0,
    ) -> AsyncIterator[pb.ReleaseEvent]:
        """Async version of :meth:`promoflow.Client.watch_release` (same resume rules)."""
        resume = Resume(after_seq, reconnect_timeout)
        while True:
            call = self.stubs.release.WatchRelease(
                pb.WatchReleaseRequest(release_id=release_id, after_seq=resume.last_seq),
                metadata=self.metadata,
            )
            try:
                async for response in call:
                    event = response.event
                    if resume.received(event) or heartbeats:
                        yield event
                return
            except grpc.RpcError as e:
                delay = resume.retry_delay(e)
                if delay is None:
                    raise from_rpc_error(e) from e
                await asyncio.sleep(delay)
            finally:
                call.cancel()

    async def wait_release(self, release_id: str, *, reconnect_timeout: float = 60.0) -> pb.Release:
        async for _ in self.watch_release(release_id, reconnect_timeout=reconnect_timeout):
            pass
        return await self.get_release(release_id)

    async def watch_releases(
        self,
        *,
        product: str = "",
        flow: str = "",
        after_cursor: str = "",
        reconnect_timeout: float = 60.0,
    ) -> AsyncIterator[pb.WatchReleasesResponse]:
        resume = Resume(0, reconnect_timeout)
        cursor = after_cursor
        while True:
            call = self.stubs.release.WatchReleases(
                pb.WatchReleasesRequest(product=product, flow=flow, after_cursor=cursor),
                metadata=self.metadata,
            )
            try:
                async for response in call:
                    resume.received(response.event)
                    cursor = response.cursor or cursor
                    yield response
                return
            except grpc.RpcError as e:
                delay = resume.retry_delay(e)
                if delay is None:
                    raise from_rpc_error(e) from e
                await asyncio.sleep(delay)
            finally:
                call.cancel()
