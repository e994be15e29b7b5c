"""Path normalisation (RFC 3986 5.2.4 and 6.2.2, merged slashes, refused backslashes,
path parameters), pure and on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway.proxy.paths import PathError, normalise, remove_dot_segments, routing_path, variants
from tests.gateway.http.wire import Site, converse, open_site


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with open_site() as site:
        yield site


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986 5.2.4's example
        ("/mid/content=5/../6", "/mid/6"),
        ("/a/..", "/"),
        ("/a/.", "/a/"),
        ("/../a", "/a"),
        ("/a//b", "/a//b"),
    ],
)
def test_remove_dot_segments(path: str, expected: str) -> None:
    assert remove_dot_segments(path) == expected


def test_unreserved_escapes_are_decoded_and_others_upper_cased() -> None:
    assert normalise(b"/%7Euser/%41%2f%3a") == "/~user/A%2F%3A"


def test_malformed_escape_and_relative_target_are_refused() -> None:
    with pytest.raises(PathError):
        normalise(b"/a%zz")
    with pytest.raises(PathError):
        normalise(b"a/b")


def test_variants_expose_encoded_dots_and_slashes() -> None:
    assert variants(b"/plain", "/plain") == []
    assert variants(b"/a/%2e%2e/b", normalise(b"/a/%2e%2e/b")) == ["/a/%2E%2E/b"]
    assert variants(b"/a/..%2Fb", normalise(b"/a/..%2Fb")) == ["/b"]


def test_slashes_are_merged_before_dot_segments_are_removed() -> None:
    assert normalise(b"//api//users") == "/api/users"
    assert normalise(b"/a/..//b") == "/b"
    assert normalise(b"/a//%2e%2e//b") == "/b"
    assert normalise(b"/a/%2F/b") == "/a/%2F/b"  # an encoded slash is not a separator


def test_backslash_and_encoded_nul_are_refused() -> None:
    for raw in (b"/api\\users", b"/api/%00/users", b"/a\\..\\b"):
        with pytest.raises(PathError):
            normalise(raw)
    assert normalise(b"/a%5Cb") == "/a%5Cb"  # encoded: routed by its readings (variants)


def test_routing_path_drops_path_parameters_like_a_servlet_container() -> None:
    assert routing_path("/api/users;jsessionid=1") == "/api/users"
    assert routing_path("/public/..;/admin") == "/admin"
    assert routing_path("/a;x=1/b;y/;/c") == "/a/b/c"
    plain = "/no/parameters"
    assert routing_path(plain) is plain
    assert normalise(b"/public/..;/admin") == "/public/..;/admin"  # forwarded as sent
    assert variants(b"/a/%2e%2e;x/b", normalise(b"/a/%2e%2e;x/b")) == ["/a/%2E%2E/b"]


async def _send(site: Site, target: bytes, method: bytes = b"GET") -> tuple[int, Any]:
    """Send one request for ``target`` on a fresh connection; its status and JSON body."""
    request = b"%b %b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" % (method, target)
    responses, _ = await converse(site.port, request, timeout=1)
    return responses[0].status, responses[0].json()


async def test_doubled_slashes_reach_the_route_the_path_names(site: Site) -> None:
    site.reset()
    status, echoed = await _send(site, b"//api//users")
    assert status == 200 and echoed["path"] == "/api/users"
    assert len(site.api.seen) == 1 and site.legacy.seen == []


async def test_a_backslash_in_the_path_is_refused(site: Site) -> None:
    site.reset()
    assert await _send(site, b"/api\\users") == (400, {"error": "backslash in path"})
    assert site.hits() == 0


async def test_path_parameters_route_without_them_and_are_forwarded(site: Site) -> None:
    site.reset()
    assert (await _send(site, b"/api/users;x"))[0] == 200
    assert (await _send(site, b"/public/..;/api/users/7"))[0] == 200  # Tomcat: /api/users/7
    assert [s["path"] for s in site.api.seen] == ["/api/users;x", "/public/..;/api/users/7"]
    assert site.legacy.seen == []


async def test_path_parameters_on_a_captured_write_are_refused(site: Site) -> None:
    site.reset()
    # capture rules match the forwarded path: with parameters, the write would escape them
    status, body = await _send(site, b"/api/orders;x", b"POST")
    assert status == 400 and "path parameters" in body["error"]
    assert site.hits() == 0
    assert (await _send(site, b"/api/orders;jsessionid=1"))[0] == 200  # GETs are not captured
    assert [s["path"] for s in site.legacy.seen] == ["/api/orders;jsessionid=1"]
