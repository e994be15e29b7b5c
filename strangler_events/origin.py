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

The markers are the gateway's to set, never a client's: a client's write carrying the
origin header would not be captured (an event lost), one carrying ``x-strangler-dry-run``
or ``x-strangler-shadow`` would be answered and not committed.  The gateway removes every
name in :data:`MARKERS` from a client's request.  A request that proves it is the reverse
sync -- ``x-strangler-origin-token`` equal to the secret in the variable that
``proxy.origin_token_env`` names -- keeps the origin header and the event id; the token
header itself is never forwarded.
"""

from __future__ import annotations

ORIGIN_HEADER = "x-strangler-origin"
EVENT_ID_HEADER = "x-strangler-event-id"
DRY_RUN_HEADER = "x-strangler-dry-run"
SHADOW_HEADER = "x-strangler-shadow"
ORIGIN_TOKEN_HEADER = "x-strangler-origin-token"
REVERSE_SYNC = "reverse-sync"
ORIGIN_SETTING = "strangler.origin"

#: what a reverse-sync write that proved itself keeps
PROVEN: frozenset[str] = frozenset({ORIGIN_HEADER, EVENT_ID_HEADER})
#: the headers the gateway removes from a client's request (see above)
MARKERS: frozenset[str] = frozenset(
    {ORIGIN_HEADER, EVENT_ID_HEADER, DRY_RUN_HEADER, SHADOW_HEADER, ORIGIN_TOKEN_HEADER}
)

__all__ = [
    "DRY_RUN_HEADER",
    "EVENT_ID_HEADER",
    "MARKERS",
    "ORIGIN_HEADER",
    "ORIGIN_SETTING",
    "ORIGIN_TOKEN_HEADER",
    "PROVEN",
    "REVERSE_SYNC",
    "SHADOW_HEADER",
]
