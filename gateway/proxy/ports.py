"""The small interfaces the proxy calls for the copies it hands out: mirroring and capture.

The proxy never imports :mod:`shadow` or :mod:`gateway.capture`; the worker
(:mod:`gateway.runtime.worker`) builds their real implementations and passes them
to the :class:`~gateway.proxy.proxy.Proxy` constructor.  Types and protocols only.

Mirroring, on the hot path::

    lane = mirror.lane(route, method, path, served, replayable)   # None: not mirrored
    ...the client gets its answer...
    lane.submit(sample)            # or lane.skip(method, path, "too-large")

Capture of a legacy write::

    ticket = capture.begin(route, method, path, request_id)       # None: not captured
    ...forward...
    await ticket.finish(exchange)  # the event (or doubt) is stored before the client hears back
    ticket.abandon()               # cut short: recorded as in doubt
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.config import Backend, Route
from gateway.http.downstream import Receive, Scope, Send
from gateway.http.exchange import Exchange, Sample


class MirrorLane(Protocol):
    """One route's mirroring, as the proxy sees it for a sampled request."""

    @property
    def max_body_bytes(self) -> int:
        """Responses larger than this are not compared."""
        ...

    def submit(self, sample: Sample) -> None:
        """Mirror ``sample`` in the background; never blocks or raises."""
        ...

    def skip(self, method: str, path: str, reason: str) -> None:
        """Count a sampled request that could not be mirrored."""
        ...


class Mirror(Protocol):
    def lane(
        self, route: Route, method: str, path: str, served: str, replayable: bool
    ) -> MirrorLane | None:
        """The lane to mirror this request on, or None (not sampled, skipped or shed)."""
        ...

    def reconfigure(self, backends: dict[str, Backend]) -> None: ...


class CaptureTicket(Protocol):
    """A captured write between its intent (journaled) and its outcome."""

    async def finish(self, exchange: Exchange | None, reason: str = "") -> None:
        """Record the outcome: the exchange (a backend the rule does not cover captures
        nothing), or None with a reason (the legacy write may have happened) or without
        one (nothing was sent)."""
        ...

    def abandon(self) -> None:
        """The request was cut short after forwarding: record it as in doubt."""
        ...


class Capture(Protocol):
    @property
    def max_body_bytes(self) -> int:
        """Bodies kept for capture, at most."""
        ...

    def rejecting(self) -> bool:
        """True while captured writes must be refused (outbox down, ``on_error: reject``)."""
        ...

    def wants(self, route: Route, method: str, path: str) -> bool:
        """Whether a capture rule of ``route`` covers this request (checked before its
        body is read, to keep the body and to refuse while the outbox is down)."""
        ...

    def begin(self, route: Route, method: str, path: str, request_id: str) -> CaptureTicket | None:
        """A ticket when a capture rule of ``route`` covers this request, else None."""
        ...


class BackendHealth(Protocol):
    """Outlier ejection, as the WebSocket relay takes part in it (the proxy's Outliers)."""

    def ejected(self) -> frozenset[str]:
        """Backends ejected right now."""
        ...

    def counted(self, backend: str, ok: bool) -> None:
        """An attempt's outcome at ``backend``: a success ends its failure streak."""
        ...


WebSocketRelay = Callable[..., Awaitable[None]]
Hook = Callable[[], Awaitable[None]]

__all__ = [
    "BackendHealth",
    "Capture",
    "CaptureTicket",
    "Hook",
    "Mirror",
    "MirrorLane",
    "Receive",
    "Scope",
    "Send",
    "WebSocketRelay",
]
