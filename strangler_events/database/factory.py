"""The consumer database for a URL: ``open_database("sqlite:///./orders.db")`` or
``open_database("postgresql://...")``.  Each adapter (and so its driver) is imported only
when a URL asks for it."""

from __future__ import annotations

from strangler_events.database.port import Database, DatabaseError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite://"


def open_database(url: str) -> Database:
    """The adapter for ``url``; nothing is connected until first use."""
    if url.startswith(POSTGRES_SCHEMES):
        from strangler_events.database.postgres import PostgresDatabase

        return PostgresDatabase(url)
    if url.startswith(SQLITE_SCHEME):
        from strangler_events.database.sqlite import SqliteDatabase

        return SqliteDatabase(url)
    raise DatabaseError(
        f"unsupported database URL {url!r}: expected postgresql://... or sqlite:///..."
    )
