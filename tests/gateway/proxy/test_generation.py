"""A generation holds what one configuration derives: table, header names, Host rules."""

from __future__ import annotations

from gateway.config import parse
from gateway.proxy.generation import Generation


def test_generation_derives_once_from_its_config() -> None:
    config = parse(
        """\
version: 1
proxy: {route_header: X-Route, backend_header: X-Backend}
backends:
  legacy: {url: "http://127.0.0.1:9001", legacy: true}
  v2: {url: "http://orders:9002", host_header: backend}
routes:
  - name: all
    split: {legacy: 1, v2: 1}
"""
    )
    gen = Generation(config)
    assert gen.route_header == b"x-route"
    assert gen.backend_header == b"x-backend"
    assert gen.host_for == {"legacy": None, "v2": b"orders:9002"}
    assert gen.table.decide is not None
