"""llhttp as the framer's tokenizer: the offset where an Upgrade stops it, and its errors
turned into refusals."""

from __future__ import annotations

import pytest

from gateway.http.framing import Head, Limits, RequestFramer
from gateway.http.head import Refusal
from gateway.http.llhttp import tokenizer


class Failing(RequestFramer):
    def __init__(self) -> None:
        super().__init__()
        self.limits = Limits()
        self.peer, self.scheme = "192.0.2.1", "http"
        self.tokenizer = tokenizer(self)

    def request_received(self, head: Head) -> None:
        raise RuntimeError("a bug in a callback")


def test_offsets_and_refusals() -> None:
    framer = Failing()
    parser = tokenizer(framer)
    handshake = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    framer.tokenizer = parser
    assert parser.feed(handshake + b"rest") == len(handshake)
    with pytest.raises(Refusal) as malformed:
        tokenizer(Failing()).feed(b"GET / HTTP/1.1\r\nHost a\r\n\r\n")
    assert malformed.value.status == 400 and malformed.value.reason.startswith("malformed request")
    with pytest.raises(Refusal) as refused:
        Failing().tokenizer.feed(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n")
    assert (refused.value.status, refused.value.reason) == (505, "HTTP/2.0 is not supported")


def test_a_failing_callback_is_an_internal_error_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(Refusal) as failed:
        Failing().tokenizer.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (failed.value.status, failed.value.reason) == (500, "internal gateway error")
    assert "error framing a request" in caplog.text
