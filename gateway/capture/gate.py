"""The proxy's capture port (:class:`gateway.proxy.ports.Capture`) over the recorder.

It finds the capture rule of a route for a request (rules are compiled once per
configuration, keyed by the route's rule tuple) and opens a ticket in the
:class:`~gateway.capture.recorder.Recorder`, whose journal makes the intent
durable before the request is forwarded.
"""

from __future__ import annotations

from gateway.capture.recorder import Recorder, Ticket
from gateway.capture.rules import CompiledRule, compile_rules, find_rule
from gateway.config import Capture, Route
from gateway.http.exchange import Exchange


class CaptureGate:
    """Decides which requests are captured and hands the proxy a ticket for each::

    gate = CaptureGate(recorder)
    ticket = gate.begin(route, "POST", "/api/orders", request_id)
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._compiled: dict[int, tuple[tuple[Capture, ...], tuple[CompiledRule, ...]]] = {}

    @property
    def max_body_bytes(self) -> int:
        return self.recorder.max_body_bytes

    def rejecting(self) -> bool:
        return self.recorder.rejecting()

    def _rules(self, route: Route) -> tuple[CompiledRule, ...]:
        # A route's capture tuple lives as long as its configuration; a reload brings
        # new tuples (the identity check keeps a recycled id from matching).
        entry = self._compiled.get(id(route.capture))
        if entry is None or entry[0] is not route.capture:
            if len(self._compiled) > 1024:
                self._compiled.clear()
            entry = (route.capture, compile_rules(route.capture))
            self._compiled[id(route.capture)] = entry
        return entry[1]

    def wants(self, route: Route, method: str, path: str) -> bool:
        return find_rule(self._rules(route), method, path, None) is not None

    def begin(self, route: Route, method: str, path: str, request_id: str) -> GateTicket | None:
        found = find_rule(self._rules(route), method, path, None)
        if found is None:
            return None
        return GateTicket(
            self.recorder, self.recorder.begin(request_id, route.name, method, path, *found)
        )


class GateTicket:
    """One captured request's ticket, as the proxy holds it."""

    __slots__ = ("_recorder", "_ticket")

    def __init__(self, recorder: Recorder, ticket: Ticket) -> None:
        self._recorder = recorder
        self._ticket = ticket

    async def finish(self, exchange: Exchange | None, reason: str = "") -> None:
        if exchange is not None and exchange.backend not in self._ticket.rule.rule.backends:
            exchange = None  # served by a backend this rule does not capture
        await self._recorder.finish(self._ticket, exchange, reason)

    def abandon(self) -> None:
        self._recorder.abandon(self._ticket)
