"""Where shadow comparison results are kept: the store port, its PostgreSQL and SQLite
adapters, and ``open_store(url)`` which picks one."""

from shadow.store.factory import open_store
from shadow.store.port import (
    COLUMNS,
    DEFAULT_URL,
    OUTCOMES,
    FieldDiff,
    Result,
    ResultStore,
    StoreError,
    from_row,
    hashed,
    to_row,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_URL",
    "FieldDiff",
    "OUTCOMES",
    "Result",
    "ResultStore",
    "StoreError",
    "from_row",
    "hashed",
    "open_store",
    "to_row",
]
