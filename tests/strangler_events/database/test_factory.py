"""open_database: the adapter for each URL scheme, imported only when asked for, and a
clear error for any other URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import strangler_events
from strangler_events.database import open_database as exported
from strangler_events.database.factory import open_database
from strangler_events.database.port import DatabaseError
from strangler_events.database.postgres import PostgresDatabase
from strangler_events.database.sqlite import SqliteDatabase


def test_sqlite_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/c.db"
    database = open_database(url)
    assert isinstance(database, SqliteDatabase)
    assert database.url == url and database.path == f"{tmp_path}/nested/c.db"
    assert not (tmp_path / "nested").exists()  # nothing is opened before first use


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_urls(scheme: str) -> None:
    url = f"{scheme}://app@127.0.0.1:1/orders"
    database = open_database(url)
    assert isinstance(database, PostgresDatabase) and database.url == url


@pytest.mark.parametrize("url", ["mysql://x", "orders.db", "", "sqlite:"])
def test_any_other_url_is_refused_by_name(url: str) -> None:
    with pytest.raises(DatabaseError) as caught:
        open_database(url)
    assert str(caught.value) == (
        f"unsupported database URL {url!r}: expected postgresql://... or sqlite:///..."
    )


def test_a_malformed_sqlite_url_is_refused_by_name() -> None:
    with pytest.raises(DatabaseError, match="expected sqlite:///PATH, got 'sqlite://x.db'"):
        open_database("sqlite://x.db")


def test_exported_from_the_package() -> None:
    assert exported is open_database
    assert strangler_events.open_database is open_database


def test_sqlite_does_not_import_the_postgresql_driver() -> None:
    code = (
        "import sys\n"
        "from strangler_events.database import open_database\n"
        "open_database('sqlite:///./unused.db')\n"
        "assert 'asyncpg' not in sys.modules, 'asyncpg was imported'\n"
        "open_database('postgresql://x@127.0.0.1:1/y')\n"
        "assert 'asyncpg' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
