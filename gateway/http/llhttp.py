"""llhttp (through httptools) as :mod:`gateway.http.framing`'s tokenizer.

The only module that imports httptools on the request side: it turns the parser's
exceptions into what the framer understands (an offset where an Upgrade stopped it, or a
:class:`~gateway.http.head.Refusal`).
"""

from __future__ import annotations

import logging

import httptools

from gateway.http.framing import RequestFramer
from gateway.http.head import Refusal

log = logging.getLogger("strangler.protocol")


class Llhttp:
    """A request parser calling back a :class:`~gateway.http.framing.RequestFramer`.

    It holds httptools' parser rather than subclassing it, so that it compiles to a native
    class (an extension type cannot be subclassed by one)."""

    __slots__ = ("_parser",)

    def __init__(self, framer: RequestFramer) -> None:
        self._parser = httptools.HttpRequestParser(framer)

    def get_http_version(self) -> str:
        version: str = self._parser.get_http_version()
        return version

    def get_method(self) -> bytes:
        method: bytes = self._parser.get_method()
        return method

    def should_keep_alive(self) -> bool:
        return bool(self._parser.should_keep_alive())

    def should_upgrade(self) -> bool:
        return bool(self._parser.should_upgrade())

    def feed(self, data: bytes | memoryview) -> int:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset: int = exc.args[0]
            return offset
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, Refusal):
                raise cause from None
            if isinstance(exc, httptools.HttpParserCallbackError):
                log.error("error framing a request", exc_info=cause)
                raise Refusal(500, "internal gateway error") from cause
            raise Refusal(400, f"malformed request: {exc}") from None
        return -1


def tokenizer(framer: RequestFramer) -> Llhttp:
    """A tokenizer feeding ``framer`` (assign it to ``framer.tokenizer``)."""
    return Llhttp(framer)


__all__ = ["Llhttp", "tokenizer"]
