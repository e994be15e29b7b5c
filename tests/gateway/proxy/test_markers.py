"""The gateway's marker headers never come from a client: unit tests of the stripping, and
a real gateway (its own server, a real backend, a real outbox) showing that a forged
origin header is captured and not forwarded, that the reverse sync's token keeps it, and
that a forged dry-run marker never reaches the primary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.capture.outbox import open_store
from gateway.config import parse
from gateway.http.downstream import Request, request_from_scope
from gateway.proxy.generation import Generation
from gateway.proxy.markers import proven, unmarked, unmarked_request
from tests.gateway.support import backends, gateway

TOKEN = b"s3cret-token"
FORGED = [
    (b"host", b"gw"),
    (b"x-strangler-origin", b"reverse-sync"),
    (b"x-strangler-event-id", b"e1"),
    (b"x-strangler-dry-run", b"1"),
    (b"x-strangler-shadow", b"abc"),
    (b"x-other", b"kept"),
]


def test_a_client_loses_every_marker() -> None:
    assert unmarked(FORGED, None) == [(b"host", b"gw"), (b"x-other", b"kept")]
    assert unmarked(FORGED, TOKEN) == [(b"host", b"gw"), (b"x-other", b"kept")]  # no token sent


def test_the_right_token_keeps_the_origin_and_event_id_but_not_the_token_or_dry_run() -> None:
    sent = [*FORGED, (b"x-strangler-origin-token", TOKEN)]
    assert unmarked(sent, TOKEN) == [
        (b"host", b"gw"),
        (b"x-strangler-origin", b"reverse-sync"),
        (b"x-strangler-event-id", b"e1"),
        (b"x-other", b"kept"),
    ]


@pytest.mark.parametrize(
    ("sent", "configured"),
    [
        ([(b"x-strangler-origin-token", b"wrong")], TOKEN),
        ([(b"x-strangler-origin-token", TOKEN[:-1])], TOKEN),
        ([(b"x-strangler-origin-token", TOKEN)] * 2, TOKEN),  # two: ambiguous, refused
        ([(b"x-strangler-origin-token", b"")], b""),  # an empty secret proves nothing
        ([(b"x-strangler-origin-token", TOKEN)], None),  # no secret configured
        ([], TOKEN),
    ],
)
def test_no_proof_without_exactly_the_configured_token(
    sent: list[tuple[bytes, bytes]], configured: bytes | None
) -> None:
    assert not proven(sent, configured)
    assert unmarked([*FORGED, *sent], configured) == [(b"host", b"gw"), (b"x-other", b"kept")]


def test_proof() -> None:
    assert proven([(b"x-strangler-origin-token", TOKEN)], TOKEN)


def test_a_request_is_marked_and_unmarked() -> None:
    scope: dict[str, Any] = {"type": "http", "method": "PUT", "path": "/a", "headers": FORGED}
    request = request_from_scope(scope)
    assert request.marked
    plain = unmarked_request(request, None)
    assert not plain.marked and plain.headers == [(b"host", b"gw"), (b"x-other", b"kept")]
    assert plain.method == "PUT" and plain.path == b"/a"
    assert not request_from_scope({**scope, "headers": [(b"host", b"gw")]}).marked
    assert Request("GET", b"/", b"/", b"", [], "1.2.3.4").marked is False


def test_the_generation_reads_the_secret_from_the_named_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = routes("http://127.0.0.1:1", "sqlite:///x.db", Path("spool"), "ORIGIN_TOKEN_T")
    monkeypatch.setenv("ORIGIN_TOKEN_T", "abc")
    assert Generation(parse(text)).origin_token == b"abc"
    monkeypatch.setenv("ORIGIN_TOKEN_T", "")
    assert Generation(parse(text)).origin_token is None
    assert (
        Generation(parse(routes("http://127.0.0.1:1", "sqlite:///x.db", Path("s")))).origin_token
        is None
    )


# --- a real gateway ----------------------------------------------------------------------


def routes(legacy: str, outbox: str, spool: Path, token_env: str | None = None) -> str:
    proxy = f"proxy: {{origin_token_env: {token_env}}}\n" if token_env else ""
    return f"""\
version: 1
{proxy}backends:
  legacy: {{url: "{legacy}", legacy: true}}
routes:
  - name: sync
    match: {{prefix: /api, headers: {{x-strangler-origin: {{present: true}}}}}}
    split: {{legacy: 100}}
    capture:
      - {{method: PUT, path: "/api/orders/{{id}}", event: OrderUpdated, aggregate: order,
          id: "path:id", payload: none}}
  - name: orders
    match: {{prefix: /api}}
    split: {{legacy: 100}}
    capture:
      - {{method: PUT, path: "/api/orders/{{id}}", event: OrderUpdated, aggregate: order,
          id: "path:id", payload: none}}
outbox: {{url: "{outbox}", spool: "{spool}"}}
"""


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, str]]:
    """A gateway with the origin secret ``TOKEN``, in front of an echoing backend."""
    monkeypatch.setenv("STRANGLER_TEST_ORIGIN_TOKEN", TOKEN.decode())
    outbox = f"sqlite:///{tmp_path}/outbox.db"
    with backends("legacy") as up:
        text = routes(up["legacy"].url, outbox, tmp_path / "spool", "STRANGLER_TEST_ORIGIN_TOKEN")
        with gateway(text) as (server, _):
            yield server.port, outbox


async def put(port: int, ident: int, headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        reply = await client.put(f"/api/orders/{ident}", json={"q": 1}, headers=headers)
    assert reply.status_code == 200, reply.text
    seen: dict[str, Any] = json.loads(reply.content)
    seen["route"] = reply.headers["x-strangler-route"]
    seen["names"] = {name for name, _ in seen["headers"]}
    return seen


async def captured(outbox: str) -> list[str]:
    store = open_store(outbox)
    try:
        return [r.event.aggregateid for r in await store.pending(100)]
    finally:
        await store.close()


async def test_a_forged_origin_is_captured_and_never_forwarded(served: tuple[int, str]) -> None:
    port, outbox = served
    forged = {"x-strangler-origin": "reverse-sync", "x-strangler-event-id": "e-forged"}
    seen = await put(port, 1, forged)
    assert seen["route"] == "orders"  # not routed on the forged header either
    assert not seen["names"] & {"x-strangler-origin", "x-strangler-event-id"}
    wrong = await put(port, 2, {**forged, "x-strangler-origin-token": "guess"})
    assert wrong["route"] == "orders"
    assert not wrong["names"] & {"x-strangler-origin", "x-strangler-origin-token"}
    assert await captured(outbox) == ["1", "2"]  # both writes made their events


async def test_the_reverse_sync_with_the_token_is_not_captured(served: tuple[int, str]) -> None:
    port, outbox = served
    sync = {
        "x-strangler-origin": "reverse-sync",
        "x-strangler-event-id": "e7",
        "x-strangler-origin-token": TOKEN.decode(),
    }
    seen = await put(port, 7, sync)
    assert seen["route"] == "sync"
    assert ["x-strangler-origin", "reverse-sync"] in seen["headers"]
    assert ["x-strangler-event-id", "e7"] in seen["headers"]
    assert "x-strangler-origin-token" not in seen["names"]  # the secret stays here
    await put(port, 8, {})  # a plain write after it: captured, so the store is current
    assert await captured(outbox) == ["8"]


async def test_a_forged_dry_run_never_reaches_the_primary(served: tuple[int, str]) -> None:
    port, outbox = served
    seen = await put(port, 3, {"x-strangler-dry-run": "1", "x-strangler-shadow": "x"})
    assert not seen["names"] & {"x-strangler-dry-run", "x-strangler-shadow"}
    assert ["x-forwarded-for", "127.0.0.1"] in seen["headers"]  # the rest is forwarded as ever
    assert await captured(outbox) == ["3"]
