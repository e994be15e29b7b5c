"""The account example: an event-sourced aggregate, its repository and given-when-then
tests (``python -m examples.account`` runs it against a SQLite event store)."""
