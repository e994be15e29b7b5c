"""What a call hands to capture, and its access-log line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from gateway.config import parse
from gateway.http.downstream import Request
from gateway.proxy.call import Call, access_log, exchange_of
from gateway.proxy.generation import Generation
from gateway.proxy.headers import Outgoing
from gateway.proxy.routing import Facts

GEN = Generation(
    parse(
        """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:9001", legacy: true}
routes:
  - name: orders
    split: {legacy: 1}
"""
    )
)


class Response:
    status = 201
    headers = [(b"content-type", b"application/json")]


def _call(stream: bool = False) -> Call:
    request = Request(
        "POST", b"/api/orders", b"/api/orders", b"", [(b"traceparent", b"00-abc-01")], "10.0.0.1"
    )
    decision = GEN.table.decide(Facts("POST", "/api/orders", {}), 0.5, b"/api/orders")
    assert decision is not None

    async def body() -> AsyncIterator[bytes]:
        yield b""

    return Call(
        GEN, request, None, decision, "POST", "/api/orders", b"", b'{"a": 1}',  # type: ignore[arg-type]
        body() if stream else None, 8, Outgoing([], b"rid-1", b"gw"), 0.0,
    )  # fmt: skip


def test_exchange_of_keeps_strings_and_the_body_only_when_whole() -> None:
    ex = exchange_of(_call(), "legacy", Response(), b'{"id": 1}')  # type: ignore[arg-type]
    assert (ex.route, ex.status, ex.request_id, ex.traceparent) == (
        "orders",
        201,
        "rid-1",
        "00-abc-01",
    )
    assert (
        ex.request_body == b'{"a": 1}' and ex.response_headers["content-type"] == "application/json"
    )
    streamed = exchange_of(_call(stream=True), "legacy", Response(), None)  # type: ignore[arg-type]
    assert streamed.request_body is None


def test_access_log_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    access_log(_call(), "legacy", 201, 0.0015, 0.002)
    line = json.loads(capsys.readouterr().out)
    assert line["route"] == "orders" and line["status"] == 201 and line["upstream_ms"] == 1.5
    assert line["request_id"] == "rid-1"
