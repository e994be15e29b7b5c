"""Where a write comes from, written once for everyone who marks or checks it (no imports).

The reverse sync (:mod:`strangler_events.reverse_sync`) applies the new service's events
to the legacy system.  Those writes must not be captured again and come back to the
service as new events (an echo), so they carry their origin:

* HTTP: the header ``x-strangler-origin: reverse-sync``, and ``x-strangler-event-id``
  naming the event applied (the legacy side can record it and ignore a repeat).  The
  gateway's capture rules make no event for a write that carries the origin header.
* PostgreSQL: the transaction-local setting ``strangler.origin`` (``SELECT
  set_config('strangler.origin', 'reverse-sync', true)``); the capture triggers
  (``gateway/capture/triggers.py``) write no outbox row while it is set.
"""

from __future__ import annotations

ORIGIN_HEADER = "x-strangler-origin"
EVENT_ID_HEADER = "x-strangler-event-id"
REVERSE_SYNC = "reverse-sync"
ORIGIN_SETTING = "strangler.origin"

__all__ = ["EVENT_ID_HEADER", "ORIGIN_HEADER", "ORIGIN_SETTING", "REVERSE_SYNC"]
