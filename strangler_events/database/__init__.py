"""The consumer side's database: the :class:`Database` and :class:`Tx` seam, its error,
and :func:`open_database` to get the adapter for a URL."""

from strangler_events.database.factory import open_database
from strangler_events.database.port import Database, DatabaseError, Tx

__all__ = ["Database", "DatabaseError", "Tx", "open_database"]
