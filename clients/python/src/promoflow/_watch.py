"""Resume bookkeeping shared by the sync and asyncio watch iterators."""

from __future__ import annotations

import time
from typing import Optional

import grpc

from . import pb


class Resume:
    """Tracks the position of a release watch and the reconnect backoff.

    A watch is resumed after UNAVAILABLE (the server shut down or cannot be
    reached) with `after_seq` = the seq of the last event received; it gives
    up when reconnecting keeps failing for `reconnect_timeout` seconds.
    """

    def __init__(self, after_seq: int, reconnect_timeout: float) -> None:
        self.last_seq = after_seq
        self.reconnect_timeout = reconnect_timeout
        self._failing_since: Optional[float] = None
        self._delay = 0.05

    def received(self, event: pb.ReleaseEvent) -> bool:
        """Records an event; returns whether it is to be yielded (not a heartbeat)."""
        self._failing_since = None
        self._delay = 0.05
        kind = event.WhichOneof("change")
        if kind == "heartbeat":
            return False
        self.last_seq = max(self.last_seq, event.seq)
        return True

    def retry_delay(self, error: grpc.RpcError) -> Optional[float]:
        """Seconds to wait before reconnecting, or None to give up."""
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            return None
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since > self.reconnect_timeout:
            return None
        delay = self._delay
        self._delay = min(self._delay * 2, 1.0)
        return delay
