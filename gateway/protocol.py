"""uvicorn's httptools protocol, taught two things the ASGI scope does not carry.

* The request target as sent: uvicorn parses ``GET http://other.host/x`` down
  to path ``/x``, which would let an absolute-form request for a foreign host
  look like a local one.  The proxy refuses any target not in origin-form.
* The size of the request head: httptools has no limit of its own, so the
  headers are counted as they arrive, stored only up to the limit, and the
  proxy answers 431 past it.

Both go to the proxy in ``scope["extensions"]["strangler"]``.  This is the only
module that touches uvicorn internals.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GatewayProtocol(HttpToolsProtocol):
    max_header_bytes = 65536

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._overflow = False

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_bytes += len(url)
        if self._head_bytes > self.max_header_bytes:
            self._overflow = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.max_header_bytes:
            self._overflow = True  # stop storing: the request is answered with 431
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        scope: Any = self.scope
        scope["extensions"] = {"strangler": {"target": self.url, "overflow": self._overflow}}
        super().on_headers_complete()


def protocol_class(max_header_bytes: int) -> type[GatewayProtocol]:
    """A protocol class with this head-size limit (uvicorn instantiates the class)."""
    return type("GatewayProtocol", (GatewayProtocol,), {"max_header_bytes": max_header_bytes})
