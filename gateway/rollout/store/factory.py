"""Picks the rollout store adapter for a URL: PostgreSQL or SQLite."""

from __future__ import annotations

from gateway.rollout.store.port import RolloutStore, StoreError


def open_store(url: str) -> RolloutStore:
    """The adapter for a ``postgresql://`` or ``sqlite:///`` URL."""
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.rollout.store.postgres import PostgresRollouts

        return PostgresRollouts(url)
    if url.startswith("sqlite://"):
        from gateway.rollout.store.sqlite import SqliteRollouts

        return SqliteRollouts(url)
    raise StoreError(
        f"unsupported rollout store URL {url!r}: expected postgresql://... or sqlite:///..."
    )
