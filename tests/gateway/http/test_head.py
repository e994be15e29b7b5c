"""Request-head rules: the pure checks, and on raw sockets what a hostile client tries on
the request side, each refused (400, 431, 501, 505) without reaching a backend."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from gateway.http.head import Refusal, body_framing, check, refusal_response, valid_host
from tests.gateway.http.wire import Site, converse, open_site


@pytest.fixture(scope="module")
def shared_site() -> Iterator[Site]:
    with open_site() as site:
        yield site


@pytest.fixture
def site(shared_site: Site) -> Site:
    shared_site.reset()
    return shared_site


async def _refused(site: Site, data: bytes) -> tuple[int, str]:
    """Send ``data``; the one refusal it gets (status, reason), having closed the
    connection and reached no backend."""
    responses, closed = await converse(site.port, data)
    assert len(responses) == 1 and closed, responses
    response = responses[0]
    assert response.headers[b"connection"] == b"close"
    assert response.headers[b"content-type"] == b"application/json"
    assert site.hits() == 0, site.legacy.seen + site.api.seen
    return response.status, response.json()["error"]


# The pure rules ------------------------------------------------------------
def test_versions_hosts_and_transfer_codings() -> None:
    check("1.1", [(b"host", b"a")])
    check("1.0", [])  # HTTP/1.0 without Host is served, as nginx serves it
    check("1.1", [(b"host", b"a"), (b"transfer-encoding", b" Chunked ")])
    refused = [
        ("2.0", [(b"host", b"a")], 505),
        ("0.9", [], 505),
        ("1.1", [], 400),
        ("1.1", [(b"host", b"a"), (b"host", b"b")], 400),
        ("1.1", [(b"host", b"a/b")], 400),
        ("1.0", [(b"transfer-encoding", b"chunked")], 400),
        ("1.1", [(b"host", b"a"), (b"transfer-encoding", b"gzip, chunked")], 501),
        ("1.1", [(b"host", b"a"), (b"transfer-encoding", b"identity")], 501),
    ]
    for version, noted, status in refused:
        with pytest.raises(Refusal) as caught:
            check(version, noted)
        assert caught.value.status == status, (version, noted)


def test_a_connect_announcing_a_body_is_refused() -> None:
    check("1.1", [(b"host", b"a:443")], connect=True)
    check("1.1", [(b"host", b"a:443"), (b"content-length", b"0")], connect=True)
    check("1.1", [(b"host", b"a"), (b"content-length", b"3")])  # not a CONNECT
    for noted in (
        [(b"host", b"a:443"), (b"content-length", b"3")],
        [(b"host", b"a:443"), (b"transfer-encoding", b"chunked")],
    ):
        with pytest.raises(Refusal) as caught:
            check("1.1", noted, connect=True)
        assert (caught.value.status, caught.value.reason) == (400, "CONNECT request with a body")
    with pytest.raises(Refusal) as caught:
        check("1.0", [(b"content-length", b"3")], connect=True)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        (b"example.com", True),
        (b"example.com:8080", True),
        (b"example.com.", True),
        (b"[::1]:443", True),
        (b"10.0.0.1", True),
        (b"", False),
        (b":80", False),
        (b".", False),
        (b"a b", False),
        (b"evil/../x", False),
        (b"a\\b", False),
        (b"a..b", False),
        (b"a\x00b", False),
        (b"a\x7fb", False),
    ],
)
def test_host_values(host: bytes, valid: bool) -> None:
    assert valid_host(host) is valid


def test_body_framing_and_refusal_response() -> None:
    assert body_framing([(b"host", b"a"), (b"content-length", b"12")]) == b"content-length: 12"
    assert body_framing([(b"content-length", b"0")]) is None
    assert body_framing([(b"transfer-encoding", b"chunked")]) == b"transfer-encoding: chunked"
    assert body_framing([(b"host", b"a")]) is None
    head, _, body = refusal_response(501, 'no "gzip"').partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert b"connection: close" in head and b"content-length: %d" % len(body) in head
    assert json.loads(body) == {"error": 'no "gzip"'}


# On the wire ------------------------------------------------------------------
@pytest.mark.parametrize(
    "coding", [b"gzip, chunked", b"gzip", b"chunked, gzip", b"identity", b"xchunked"]
)
async def test_a_transfer_coding_other_than_chunked_gets_501(site: Site, coding: bytes) -> None:
    status, _ = await _refused(
        site,
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: %b\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        % coding,
    )
    # llhttp refuses a list ending in anything but chunked before the head completes
    assert status == (400 if coding == b"chunked, gzip" else 501)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"CONNECT http://evil/x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 3\r\n\r\nabc",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
    ],
    ids=[
        "cl-and-te",
        "cl-twice",
        "cl-differing",
        "te-twice",
        "te-in-http-1.0",
        "connect-1.0-with-length",
        "connect-with-length",
        "connect-chunked",
    ],
)
async def test_ambiguous_framing_stays_refused(site: Site, request_bytes: bytes) -> None:
    assert (await _refused(site, request_bytes))[0] == 400


async def test_http_1_1_needs_exactly_one_host(site: Site) -> None:
    assert await _refused(site, b"GET / HTTP/1.1\r\n\r\n") == (
        400,
        "HTTP/1.1 request without a Host header",
    )
    assert await _refused(site, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == (
        400,
        "more than one Host header",
    )
    # HTTP/1.0 without Host is served, as nginx serves it
    responses, closed = await converse(site.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert [r.status for r in responses] == [200] and closed
    assert responses[0].json()["path"] == "/old"


@pytest.mark.parametrize("host", [b"", b"evil.example/x", b"a b", b"..", b"a\\b", b":8080"])
async def test_an_implausible_host_gets_400(site: Site, host: bytes) -> None:
    status, reason = await _refused(site, b"GET / HTTP/1.1\r\nHost: %b\r\n\r\n" % host)
    assert (status, reason) == (400, "invalid Host header")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX\x00A: 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400),
        (b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"FFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"-3\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
            400,
        ),
    ],
    ids=[
        "space-in-target",
        "tab-in-target",
        "control-in-target",
        "nul-in-target",
        "del-in-target",
        "obs-fold",
        "space-before-colon",
        "nul-in-value",
        "nul-in-name",
        "bare-cr-in-value",
        "bare-lf-lines",
        "http2-preface",
        "http-2.0-request-line",
        "http-1.2",
        "lower-case-method",
        "length-plus",
        "length-inner-space",
        "length-negative",
        "length-hex",
        "length-list",
        "length-overflow",
        "chunk-size-overflow",
        "chunk-size-negative",
        "chunk-bare-lf",
    ],
)
async def test_hostile_request_heads_and_framing_are_refused(
    site: Site, request_bytes: bytes, status: int
) -> None:
    assert (await _refused(site, request_bytes))[0] == status
