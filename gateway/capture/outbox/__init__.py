"""The transactional outbox: the store port, its PostgreSQL and SQLite adapters, and
``open_store(url)`` which picks one.  Adapters import only the port."""

from gateway.capture.outbox.factory import open_store
from gateway.capture.outbox.port import (
    SCHEMA_VERSION,
    STALE_AFTER_LEASES,
    Blocked,
    Heartbeat,
    OutboxError,
    OutboxStore,
    OutboxUnavailable,
    RelayState,
    Row,
    Status,
)

__all__ = [
    "Blocked",
    "Heartbeat",
    "OutboxError",
    "OutboxStore",
    "OutboxUnavailable",
    "RelayState",
    "Row",
    "SCHEMA_VERSION",
    "STALE_AFTER_LEASES",
    "Status",
    "open_store",
]
