"""Picking the event store adapter for a URL, and the default URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler_events.eventstore.factory import DEFAULT_URL, default_url, open_event_store
from strangler_events.eventstore.port import EventStoreError
from strangler_events.eventstore.postgres import PostgresEventStore
from strangler_events.eventstore.sqlite import SqliteEventStore


async def test_urls_pick_the_adapter(tmp_path: Path) -> None:
    assert isinstance(open_event_store("postgresql://u@h/db"), PostgresEventStore)
    assert isinstance(open_event_store("postgres://u@h/db"), PostgresEventStore)
    store = open_event_store(f"sqlite:///{tmp_path}/e.db")
    assert isinstance(store, SqliteEventStore) and store.url == f"sqlite:///{tmp_path}/e.db"
    await store.close()


def test_an_unknown_url_names_what_is_supported() -> None:
    with pytest.raises(EventStoreError, match="'mysql://x' is not supported: expected"):
        open_event_store("mysql://x")


def test_the_default_url_comes_from_the_given_environment() -> None:
    assert default_url({}) == DEFAULT_URL == "sqlite:///./events.db"
    assert default_url({"STRANGLER_EVENT_STORE": "postgresql://a/b"}) == "postgresql://a/b"
    assert default_url({"STRANGLER_EVENT_STORE": ""}) == DEFAULT_URL
