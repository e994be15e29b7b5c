"""The consumer side's database seam: one transaction at a time, the same SQL on SQLite
and PostgreSQL.

Types and the error only (:mod:`strangler_events.database.factory` picks the adapter
for a URL).  A :class:`Tx` runs statements with ``?`` placeholders (the PostgreSQL
adapter turns them into ``$1, $2, ...``); ``execute`` returns the number of rows
affected.  The inbox, the stored positions and a handler's own writes share one
transaction, which is what makes a re-delivered event have no second effect.
``on_commit`` defers what must happen only once the transaction committed (counting a
metric for a handler that a rolled-back batch runs again, for instance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class DatabaseError(Exception):
    """The consumer's database failed or cannot be reached."""


class Tx(Protocol):
    async def execute(self, sql: str, *args: Any) -> int: ...

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after this transaction committed; never if it rolls back."""
        ...


class Database(Protocol):
    url: str

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """Commit when the block ends normally, roll back when it raises."""
        ...

    async def script(self, sql: str) -> None:
        """Run several statements (schema set-up)."""

    async def close(self) -> None: ...
