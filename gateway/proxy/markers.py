"""The gateway's marker headers taken off a client's request (pure: no I/O).

``x-strangler-origin`` (and ``x-strangler-event-id``) tell capture that a write is the
reverse sync's, which must not be captured; ``x-strangler-dry-run`` and
``x-strangler-shadow`` tell the new service to decide a write and commit nothing.  Sent by
a client, the first would lose an event and the others would answer 2xx for a write
never made, so the proxy removes all of them (:data:`gateway.http.head.MARKERS`) before
routing, capture and forwarding.  The mirror adds its own markers to the shadow copy
afterwards.

The one exception is the reverse sync itself, when the gateway has a secret for it
(``proxy.origin_token_env``): a request whose single ``x-strangler-origin-token`` equals
that secret (compared in constant time) keeps the origin header and the event id.  The
token header is never forwarded, and a dry-run marker never passes.  Without a secret
the origin header is always removed: the reverse sync must then write to the legacy
system directly, not through the gateway.

The server notes whether a request carries any marker while parsing it
(``Request.marked``), so a request without one costs nothing here.
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from typing import Final

from gateway.http.downstream import Request
from gateway.http.head import MARKERS
from gateway.types import Headers
from strangler_events.origin import ORIGIN_TOKEN_HEADER, PROVEN

_TOKEN: Final = ORIGIN_TOKEN_HEADER.encode()
_PROVEN: Final = frozenset(name.encode() for name in PROVEN)
_NONE: Final[frozenset[bytes]] = frozenset()


def proven(headers: Headers, token: bytes | None) -> bool:
    """Whether ``headers`` carry exactly one origin token, equal to ``token`` (None or
    empty: no request is the reverse sync's)."""
    if not token:
        return False
    sent = [value for name, value in headers if name == _TOKEN]
    return len(sent) == 1 and hmac.compare_digest(sent[0], token)


def unmarked(headers: Headers, token: bytes | None) -> Headers:
    """``headers`` without the marker headers; a proven reverse-sync request keeps its
    origin header and event id."""
    keep = _PROVEN if proven(headers, token) else _NONE
    return [pair for pair in headers if pair[0] not in MARKERS or pair[0] in keep]


def unmarked_request(request: Request, token: bytes | None) -> Request:
    """``request`` with :func:`unmarked` headers (no longer ``marked``)."""
    return replace(request, headers=unmarked(request.headers, token), marked=False)


__all__ = ["proven", "unmarked", "unmarked_request"]
