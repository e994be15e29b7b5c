"""The reverse sync's writes through the legacy system's HTTP API, marked with their
origin (:mod:`strangler_events.origin`) so that they are not captured again.

Through the gateway, the origin header passes only with the gateway's secret for the
reverse sync (``origin_token``, sent as ``x-strangler-origin-token``; the gateway's
``proxy.origin_token_env``): without it the gateway removes the header and captures the
write, which would echo it back.  Without a token, write to the legacy system directly.

A 2xx answers a write; so does a 404 to a DELETE (already gone).  Anything else raises
:class:`WriteFailed` naming the write and the answer, and the consumer retries it (a
connection error or a 5xx usually passes; a refusal is dead-lettered after the retries).
"""

from __future__ import annotations

import httpx

from strangler_events.origin import (
    EVENT_ID_HEADER,
    ORIGIN_HEADER,
    ORIGIN_TOKEN_HEADER,
    REVERSE_SYNC,
)
from strangler_events.reverse_sync.plan import Write


class WriteFailed(Exception):
    """The legacy system did not take a write (or could not be reached)."""


class HttpWriter:
    def __init__(
        self,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        origin_token: str | None = None,
    ) -> None:
        self.client = client or httpx.AsyncClient(timeout=timeout)
        self.origin_token = origin_token

    async def write(self, write: Write) -> int:
        """Send ``write``; its status code, or :class:`WriteFailed`."""
        headers = {ORIGIN_HEADER: REVERSE_SYNC, EVENT_ID_HEADER: write.event_id}
        if self.origin_token:
            headers[ORIGIN_TOKEN_HEADER] = self.origin_token
        try:
            reply = await self.client.request(
                write.method, write.url, json=write.body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise WriteFailed(f"{write.method} {write.url}: {exc!r}") from exc
        if 200 <= reply.status_code < 300 or (
            write.method == "DELETE" and reply.status_code == 404
        ):
            return reply.status_code
        raise WriteFailed(f"{write.method} {write.url}: {reply.status_code} {reply.text[:300]}")

    async def close(self) -> None:
        await self.client.aclose()
