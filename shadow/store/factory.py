"""Picks the shadow result store adapter for a URL: PostgreSQL or SQLite."""

from __future__ import annotations

from shadow.store.port import ResultStore, StoreError


def open_store(url: str) -> ResultStore:
    """The adapter for a ``postgresql://`` or ``sqlite:///`` URL."""
    if url.startswith(("postgresql://", "postgres://")):
        from shadow.store.postgres import PostgresResults

        return PostgresResults(url)
    if url.startswith("sqlite://"):
        from shadow.store.sqlite import SqliteResults

        return SqliteResults(url)
    raise StoreError(
        f"unsupported shadow store URL {url!r}: expected postgresql://... or sqlite:///..."
    )
