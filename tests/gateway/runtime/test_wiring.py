"""The worker's wiring: the proxy gets capture and the mirror only when routes ask, and
the caller's hooks run after the collaborators start and before they stop."""

from __future__ import annotations

from pathlib import Path

from gateway.config import parse
from gateway.runtime.wiring import build_proxy


def _config(tmp: Path, route_extra: str) -> str:
    return f"""\
version: 1
backends:
  legacy: {{url: "http://127.0.0.1:9", legacy: true}}
  v2: {{url: "http://127.0.0.1:10"}}
routes:
  - name: orders
    match: {{prefix: /api/orders}}
    split: {{legacy: 1}}
{route_extra}
outbox: {{url: "sqlite:///{tmp}/o.db", spool: "{tmp}/spool"}}
shadow_store: {{url: "sqlite:///{tmp}/s.db"}}
"""


def test_plain_routes_get_neither_capture_nor_mirror(tmp_path: Path) -> None:
    proxy = build_proxy(parse(_config(tmp_path, "")))
    assert proxy.capture is None and proxy.mirror is None
    assert proxy.websocket is not None


async def test_capture_and_mirror_are_wired_with_ordered_hooks(tmp_path: Path) -> None:
    extra = (
        "    shadow: {backend: v2}\n"
        "    capture:\n"
        "      - {method: POST, path: /api/orders, event: OrderCreated, aggregate: order,"
        ' id: "response:/id"}\n'
    )
    calls: list[str] = []

    async def mine_start() -> None:
        calls.append("start")

    async def mine_stop() -> None:
        calls.append("stop")

    proxy = build_proxy(
        parse(_config(tmp_path, extra)), on_startup=[mine_start], on_shutdown=[mine_stop]
    )
    assert proxy.capture is not None and proxy.mirror is not None
    assert proxy.on_startup[-1] is mine_start
    assert proxy.on_shutdown[0] is mine_stop
    for hook in proxy.on_startup:
        await hook()
    for hook in proxy.on_shutdown:
        await hook()
    assert calls == ["start", "stop"]


async def test_what_the_server_refuses_is_counted_like_the_proxys_refusals() -> None:
    from tests.gateway.support import backends, config_text, gateway, raw_request

    with backends("legacy") as b:
        text = config_text({"legacy": b["legacy"].url}, "  - {name: all, split: {legacy: 1}}")
        with gateway(text) as (gw, proxy):
            bad = await raw_request(gw.port, b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            coding = await raw_request(
                gw.port,
                b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            )
    assert bad.startswith(b"HTTP/1.1 400") and coding.startswith(b"HTTP/1.1 501")
    assert proxy.metrics.refused.get(("malformed",)) == 1
    assert proxy.metrics.refused.get(("transfer-coding",)) == 1
