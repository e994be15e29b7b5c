"""The reverse sync's HTTP writes, against a real server on a real socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from strangler_events.origin import (
    EVENT_ID_HEADER,
    ORIGIN_HEADER,
    ORIGIN_TOKEN_HEADER,
    REVERSE_SYNC,
)
from strangler_events.reverse_sync.http import HttpWriter, WriteFailed
from strangler_events.reverse_sync.plan import Write
from tests.harness import UvicornThread, free_port

Seen = list[tuple[str, str, dict[str, str], Any]]


def legacy(seen: Seen) -> Any:
    """Answers the status in the path's last segment (``/things/404``)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        seen.append((scope["method"], scope["path"], headers, json.loads(body or b"null")))
        status = int(scope["path"].rsplit("/", 1)[1])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"nope" if status >= 400 else b""})

    return app


async def test_writes_carry_their_origin_and_event_id() -> None:
    seen: Seen = []
    with UvicornThread(legacy(seen)) as server:
        writer = HttpWriter()
        try:
            assert await writer.write(Write("PUT", f"{server.url}/t/200", {"id": 1}, "e1")) == 200
            assert await writer.write(Write("DELETE", f"{server.url}/t/404", None, "e2")) == 404
            with pytest.raises(WriteFailed, match=r"PUT .*/t/422: 422 nope"):
                await writer.write(Write("PUT", f"{server.url}/t/422", {}, "e3"))
            with pytest.raises(WriteFailed, match=r"PUT .*/t/503: 503"):
                await writer.write(Write("PUT", f"{server.url}/t/503", {}, "e4"))
        finally:
            await writer.close()
    assert [(m, p, b) for m, p, _, b in seen] == [
        ("PUT", "/t/200", {"id": 1}),
        ("DELETE", "/t/404", None),
        ("PUT", "/t/422", {}),
        ("PUT", "/t/503", {}),
    ]
    assert [h[ORIGIN_HEADER] for _, _, h, _ in seen] == [REVERSE_SYNC] * 4
    assert [h[EVENT_ID_HEADER] for _, _, h, _ in seen] == ["e1", "e2", "e3", "e4"]
    assert not any(ORIGIN_TOKEN_HEADER in h for _, _, h, _ in seen)  # none without a token


async def test_the_gateways_origin_token_is_sent_when_given() -> None:
    seen: Seen = []
    with UvicornThread(legacy(seen)) as server:
        writer = HttpWriter(origin_token="s3cret")
        try:
            await writer.write(Write("PUT", f"{server.url}/t/200", {"id": 1}, "e1"))
        finally:
            await writer.close()
    [(_, _, headers, _)] = seen
    assert headers[ORIGIN_TOKEN_HEADER] == "s3cret" and headers[ORIGIN_HEADER] == REVERSE_SYNC


async def test_an_unreachable_legacy_system_fails_the_write() -> None:
    writer = HttpWriter(timeout=2)
    try:
        with pytest.raises(WriteFailed, match="ConnectError"):
            await writer.write(Write("PUT", f"http://127.0.0.1:{free_port()}/x", {}, "e1"))
    finally:
        await writer.close()
