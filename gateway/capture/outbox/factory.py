"""Picks the outbox adapter for a URL: PostgreSQL (production) or SQLite (embedded)."""

from __future__ import annotations

from gateway.capture.outbox.port import OutboxError, OutboxStore


def open_store(url: str) -> OutboxStore:
    """The adapter for a ``postgresql://`` or ``sqlite:///`` URL."""
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.capture.outbox.postgres import PostgresOutbox

        return PostgresOutbox(url)
    if url.startswith("sqlite://"):
        from gateway.capture.outbox.sqlite import SqliteOutbox

        return SqliteOutbox(url)
    raise OutboxError(f"unsupported outbox URL {url!r}: expected postgresql://... or sqlite:///...")
