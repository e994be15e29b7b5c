"""The transactional outbox: the store port, its PostgreSQL and SQLite adapters, and
``open_store(url)`` which picks one.  Adapters import only the port."""

from gateway.capture.outbox.factory import open_store
from gateway.capture.outbox.port import (
    SCHEMA_VERSION,
    Blocked,
    OutboxError,
    OutboxStore,
    OutboxUnavailable,
    Row,
    Status,
)

__all__ = [
    "Blocked",
    "OutboxError",
    "OutboxStore",
    "OutboxUnavailable",
    "Row",
    "SCHEMA_VERSION",
    "Status",
    "open_store",
]
