"""The outbox adapter is picked by URL scheme; anything else is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.capture.outbox import OutboxError, open_store
from gateway.capture.outbox.postgres import PostgresOutbox
from gateway.capture.outbox.sqlite import SqliteOutbox


def test_adapter_by_scheme(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/o.db"), SqliteOutbox)
    assert isinstance(open_store("postgresql://u@127.0.0.1:1/db"), PostgresOutbox)
    assert isinstance(open_store("postgres://u@127.0.0.1:1/db"), PostgresOutbox)


def test_unknown_scheme_is_named() -> None:
    with pytest.raises(OutboxError, match="unsupported outbox URL 'mysql://x'"):
        open_store("mysql://x")
