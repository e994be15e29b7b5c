"""The gateway's uvicorn protocol: refusals the ASGI scope cannot express, and coalesced
writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.protocol import CoalescingTransport
from tests.gateway.support import backends, config_text, gateway, raw_request


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"400",
        ),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n", b"400"),
        (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", b"40"),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 200000000\r\n\r\n", b"413"),
    ],
    ids=["cl-and-te", "oversize-header", "absolute-form", "connect", "body-too-large"],
)
async def test_malformed_and_hostile_requests(request_bytes: bytes, status: bytes) -> None:
    with backends("legacy") as b:
        text = config_text({"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}}")
        with gateway(text) as (gw, _):
            answer = await raw_request(gw.port, request_bytes)
            # the backend never saw the foreign host
            assert b"evil" not in answer
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return name


async def test_writes_in_one_iteration_leave_as_one() -> None:
    raw = Recorder()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"head")
    t.write(b"body")
    assert raw.writes == []
    await asyncio.sleep(0)
    assert raw.writes == [b"headbody"]
    t.write(b"x")
    t.flush()
    t.close()
    assert raw.writes == [b"headbody", b"x"] and raw.closed
    assert t.get_extra_info("peername") == "peername"


async def test_a_client_trickling_its_head_is_cut_off() -> None:
    with backends("legacy") as b:
        text = config_text(
            {"legacy": b["legacy"].url},
            "  - {name: all, split: {legacy: 1}}",
            "proxy: {client_timeout: 1s}\n",
        )
        with gateway(text) as (gw, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            started = asyncio.get_running_loop().time()
            closed = False
            for _ in range(20):  # one byte every 0.25 s: each byte would reset keep-alive
                await asyncio.sleep(0.25)
                try:
                    writer.write(b"a")
                    await writer.drain()
                except ConnectionError:
                    closed = True
                    break
                if reader.at_eof() or writer.is_closing():
                    closed = True
                    break
                try:
                    if await asyncio.wait_for(reader.read(1), 0.01) == b"":
                        closed = True
                        break
                except TimeoutError:
                    pass
            writer.close()
    assert closed
    assert asyncio.get_running_loop().time() - started < 3
