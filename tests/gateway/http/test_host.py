"""The Host rule for backends: preserved by default, rewritten for host_header: backend."""

from __future__ import annotations

from gateway.config import parse
from gateway.http.host import host_for, with_host

CONFIG = parse(
    """\
version: 1
backends:
  legacy: {url: "http://legacy.internal", legacy: true}
  v2: {url: "http://orders.internal:9002", host_header: backend}
  v3: {url: "http://orders.internal:80", host_header: backend}
routes:
  - name: all
    split: {legacy: 1}
"""
)


def test_preserve_keeps_the_client_host() -> None:
    assert host_for(CONFIG.backends["legacy"]) is None


def test_backend_rewrites_with_the_port_unless_80() -> None:
    assert host_for(CONFIG.backends["v2"]) == b"orders.internal:9002"
    assert host_for(CONFIG.backends["v3"]) == b"orders.internal"


def test_with_host_replaces_the_last_host_without_mutating() -> None:
    headers = [(b"accept", b"*/*"), (b"host", b"api.example.com")]
    rewritten = with_host(headers, b"orders.internal:9002", b"api.example.com")
    assert rewritten == [(b"accept", b"*/*"), (b"host", b"orders.internal:9002")]
    assert headers[-1] == (b"host", b"api.example.com")  # the original is untouched
    assert with_host(rewritten, None, b"api.example.com")[-1] == (b"host", b"api.example.com")
    assert with_host([], None, b"")[-1] == (b"host", b"localhost")
