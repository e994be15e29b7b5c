"""Admission (pure): refusals from the head alone, and the routing decision."""

from __future__ import annotations

import pytest

from gateway.config import parse
from gateway.http.downstream import Request
from gateway.proxy.admission import Refusal, admit, json_error, parse_cookies
from gateway.proxy.generation import Generation

GEN = Generation(
    parse(
        """\
version: 1
proxy: {max_body_bytes: 1000}
backends:
  legacy: {url: "http://127.0.0.1:9001", legacy: true}
routes:
  - name: api
    match: {prefix: /api}
    split: {legacy: 1}
    max_body_bytes: 10
"""
    )
)


def _request(
    target: bytes, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None
) -> Request:
    path, _, query = target.partition(b"?")
    return Request(method, target, path, query, headers or [], "127.0.0.1")


def _refusal(request: Request) -> tuple[int, str]:
    with pytest.raises(Refusal) as info:
        admit(GEN, request, 0.5, frozenset())
    return info.value.status, info.value.metric


def test_refusals_need_no_backend() -> None:
    assert _refusal(_request(b"example.com:443", "CONNECT")) == (405, "connect")
    assert _refusal(_request(b"http://evil/api")) == (400, "absolute-form")
    assert _refusal(_request(b"/nothing")) == (404, "no-route")
    assert _refusal(_request(b"/api", "POST", [(b"content-length", b"x")])) == (400, "framing")
    assert _refusal(_request(b"/api", "POST", [(b"content-length", b"11")])) == (413, "body-size")


def test_admitted_carries_route_path_and_framing() -> None:
    admitted = admit(
        GEN, _request(b"/api/a?x=1", "POST", [(b"content-length", b"5")]), 0.5, frozenset()
    )
    assert admitted.decision.route.name == "api"
    assert admitted.path == "/api/a"
    assert (admitted.length, admitted.chunked, admitted.limit, admitted.has_body) == (
        5,
        False,
        10,
        True,
    )
    chunked = admit(
        GEN, _request(b"/api", "POST", [(b"transfer-encoding", b"chunked")]), 0.5, frozenset()
    )
    assert chunked.has_body and chunked.length is None


def test_helpers() -> None:
    status, headers, body = json_error(502, "upstream reset", route="api")
    assert status == 502 and body == b'{"error": "upstream reset", "route": "api"}'
    assert (b"content-length", b"%d" % len(body)) in headers
    assert parse_cookies("a=1; b=2; a=3; junk") == {"a": "1", "b": "2"}


def test_paths_are_normalised_and_refused_alike_from_the_memo() -> None:
    for _ in range(2):  # the second time the normal form is remembered
        assert admit(GEN, _request(b"/api//x/../y"), 0.5, frozenset()).path == "/api/y"
        assert _refusal(_request(b"/api\\x")) == (400, "path")
        assert _refusal(_request(b"/api/%zz")) == (400, "path")
