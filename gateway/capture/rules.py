"""Capture rules (pure): a finished legacy write -> a change event, an in-doubt entry, or nothing.

A rule (routes.yaml ``capture``) names a method and a path template
(``/api/orders/{order_id}``), the event type, the aggregate type, and where the
aggregate id comes from: ``path:NAME``, ``response:/json/pointer``,
``request:/json/pointer`` or ``header:NAME`` (request header, else response
header).  An event is made only when a backend the rule covers answered 2xx.
When the id cannot be found, or a body needed for it was too large to keep, the
result is a :class:`Doubt` naming the reason: never a silent drop.  A write carrying
``x-strangler-origin`` (:mod:`strangler_events.origin`) makes no event: the reverse sync
applied a new service's event there, and capturing it would echo it back.

The event row has the Debezium outbox columns (``id``, ``aggregatetype``,
``aggregateid``, ``type``, ``payload``) plus ``occurred_at`` and ``headers``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Capture
from gateway.config.model import PLACEHOLDER
from gateway.http.exchange import Exchange
from strangler_events.origin import ORIGIN_HEADER


@dataclass(slots=True)
class Event:
    """One outbox row."""

    id: str
    aggregatetype: str
    aggregateid: str
    type: str
    payload: Any
    occurred_at: float
    headers: dict[str, Any] = field(default_factory=dict)
    # The record value, when the store already built it (PostgreSQL does, in SQL).
    encoded: bytes | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aggregatetype": self.aggregatetype,
            "aggregateid": self.aggregateid,
            "type": self.type,
            "payload": self.payload,
            "occurred_at": self.occurred_at,
            "headers": self.headers,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            id=data["id"],
            aggregatetype=data["aggregatetype"],
            aggregateid=data["aggregateid"],
            type=data["type"],
            payload=data["payload"],
            occurred_at=data["occurred_at"],
            headers=dict(data.get("headers") or {}),
        )


@dataclass(slots=True)
class Doubt:
    """A write that may have changed legacy data but produced no event."""

    request_id: str
    route: str
    method: str
    path: str
    status: int | None
    reason: str
    event_type: str | None = None
    occurred_at: float = field(default_factory=time.time)
    #: the gateway's own key for this write (unique: a client may reuse a request id)
    capture_id: str = ""

    @property
    def key(self) -> str:
        """What makes a doubt unique in the outbox: its capture id (older rows: request id)."""
        return self.capture_id or self.request_id

    def to_json(self) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "request_id": self.request_id,
            "route": self.route,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "event_type": self.event_type,
            "occurred_at": self.occurred_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Doubt:
        return cls(
            request_id=data["request_id"],
            route=data["route"],
            method=data["method"],
            path=data["path"],
            status=data.get("status"),
            reason=data["reason"],
            event_type=data.get("event_type"),
            occurred_at=data["occurred_at"],
            capture_id=data.get("capture_id", ""),
        )


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Capture
    pattern: re.Pattern[str]

    def needs_request_body(self) -> bool:
        return self.rule.payload in ("request", "both") or self.rule.id.startswith("request:")

    def needs_response_body(self) -> bool:
        return self.rule.payload in ("response", "both") or self.rule.id.startswith("response:")


def compile_rules(rules: tuple[Capture, ...]) -> tuple[CompiledRule, ...]:
    out = []
    for rule in rules:
        parts = PLACEHOLDER.split(rule.path)
        # split() alternates literal text and placeholder names
        regex = "".join(
            re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts)
        )
        out.append(CompiledRule(rule, re.compile(regex)))
    return tuple(out)


def find_rule(
    rules: tuple[CompiledRule, ...], method: str, path: str, backend: str | None
) -> tuple[CompiledRule, dict[str, str]] | None:
    """The first rule covering this request (and backend, unless None), with the path's
    placeholder values."""
    for compiled in rules:
        rule = compiled.rule
        if rule.method != method or (backend is not None and backend not in rule.backends):
            continue
        m = compiled.pattern.fullmatch(path)
        if m is not None:
            return compiled, m.groupdict()
    return None


class _Missing(Exception):
    pass


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer; raises KeyError when the target does not exist."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise KeyError(pointer)
    node = document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(pointer)
    return node


def _json(body: bytes | None, which: str) -> Any:
    if body is None:
        raise _Missing(f"{which} body was larger than the capture limit")
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _Missing(f"{which} body is not JSON") from exc


def capture(
    compiled: CompiledRule, params: Mapping[str, str], ex: Exchange, now: float | None = None
) -> Event | Doubt | None:
    """The event for a finished exchange that matched ``compiled``; None for non-2xx and
    for a reverse-sync write (origin header)."""
    rule = compiled.rule
    if not 200 <= ex.status < 300 or ORIGIN_HEADER in ex.request_headers:
        return None
    try:
        aggregate_id = _aggregate_id(rule, params, ex)
        payload = _payload(rule.payload, ex)
    except _Missing as exc:
        return Doubt(ex.request_id, ex.route, ex.method, ex.path, ex.status, str(exc), rule.event)
    headers: dict[str, Any] = {
        "schema_version": rule.schema_version,
        "request_id": ex.request_id,
        "route": ex.route,
        "source": "gateway",
    }
    if ex.traceparent:
        headers["traceparent"] = ex.traceparent
    return Event(
        id=str(uuid.uuid4()),
        aggregatetype=rule.aggregate,
        aggregateid=aggregate_id,
        type=rule.event,
        payload=payload,
        occurred_at=now if now is not None else time.time(),
        headers=headers,
    )


def _aggregate_id(rule: Capture, params: Mapping[str, str], ex: Exchange) -> str:
    source = rule.id
    kind, _, arg = source.partition(":")
    if kind == "path":
        value: Any = params.get(arg)
    elif kind == "header":
        value = ex.request_headers.get(arg.lower()) or ex.response_headers.get(arg.lower())
    else:
        document = _json(ex.response_body if kind == "response" else ex.request_body, kind)
        try:
            value = resolve_pointer(document, arg)
        except KeyError:
            raise _Missing(f"aggregate id {source} not found in the {kind} body") from None
    if value is None or isinstance(value, dict | list) or value == "":
        raise _Missing(f"aggregate id {source} is missing or not a scalar")
    if rule.id_type == "integer":
        return _integer_id(source, value)
    return str(value)


def _integer_id(source: str, value: Any) -> str:
    """The canonical text of a numeric id: the monolith reads ``/orders/007`` as order 7, so
    the event must say ``7`` (leading zeros, ``+`` and surrounding blanks dropped)."""
    text = str(value).strip()
    if isinstance(value, bool) or not (text.lstrip("+-").isdigit() and text.isascii()):
        raise _Missing(f"aggregate id {source} is {text!r}, not an integer (id_type: integer)")
    return str(int(text))


def _payload(kind: str, ex: Exchange) -> Any:
    if kind == "none":
        return {}
    out: dict[str, Any] = {}
    if kind in ("request", "both"):
        out["request"] = _json(ex.request_body, "request")
    if kind in ("response", "both"):
        out["response"] = _json(ex.response_body, "response")
    return out


__all__ = [
    "CompiledRule",
    "Doubt",
    "Event",
    "Exchange",
    "capture",
    "compile_rules",
    "find_rule",
    "resolve_pointer",
]
