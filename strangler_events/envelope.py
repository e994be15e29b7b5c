"""The event envelope as consumers see it (pure): what the relay publishes, decoded.

Record value (JSON)::

    {"id": "...", "type": "OrderCreated", "aggregatetype": "order", "aggregateid": "42",
     "schema_version": 1, "occurred_at": 1700000000.0, "payload": {...}, "metadata": {...}}

Record key: the aggregate id.  ``decode`` refuses anything else with a
:class:`BadEvent` naming what is wrong, so a poison record can be dead-lettered
with a reason instead of crashing the consumer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

REQUIRED = ("id", "type", "aggregatetype", "aggregateid")


class BadEvent(ValueError):
    """A record that is not an event envelope."""


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    aggregatetype: str
    aggregateid: str
    payload: Any = None
    schema_version: int = 1
    occurred_at: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def upgraded(self, version: int, payload: Any) -> Event:
        return replace(self, schema_version=version, payload=payload)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "aggregatetype": self.aggregatetype,
            "aggregateid": self.aggregateid,
            "schema_version": self.schema_version,
            "occurred_at": self.occurred_at,
            "payload": self.payload,
            "metadata": self.metadata,
        }


def encode(event: Event) -> bytes:
    return json.dumps(event.to_dict(), separators=(",", ":")).encode()


def decode(value: bytes | None) -> Event:
    if value is None:
        raise BadEvent("empty record (a tombstone?)")
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise BadEvent(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadEvent(f"expected a JSON object, got {type(data).__name__}")
    missing = [k for k in REQUIRED if not isinstance(data.get(k), str) or not data.get(k)]
    if missing:
        raise BadEvent(f"missing or empty field(s): {', '.join(missing)}")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BadEvent(f"schema_version must be a positive integer, got {version!r}")
    return Event(
        id=data["id"],
        type=data["type"],
        aggregatetype=data["aggregatetype"],
        aggregateid=data["aggregateid"],
        payload=data.get("payload"),
        schema_version=version,
        occurred_at=float(data.get("occurred_at") or 0.0),
        metadata=dict(data.get("metadata") or {}),
    )
