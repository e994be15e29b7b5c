"""Response framing without sockets: heads, how a body is delimited, and when the
connection stays open."""

from __future__ import annotations

from gateway.http import response


def _whole(status: int, headers: list[tuple[bytes, bytes]], **kw: bool) -> bytes:
    data, keep_alive = response.whole(
        status,
        headers,
        b"hello",
        kw.get("keep_alive", True),
        kw.get("head_only", False),
        kw.get("http10", False),
    )
    assert keep_alive is (b"connection: close\r\n" not in data)
    return data


def test_a_whole_body_gets_a_length_unless_it_has_one() -> None:
    assert _whole(200, [(b"x-a", b"1")]) == (
        b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 5\r\n\r\nhello"
    )
    assert _whole(200, [(b"content-length", b"5")]) == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    )
    # HEAD and 204/304: no body, no length added
    assert _whole(200, [], head_only=True) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert _whole(204, []).startswith(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert response.status_line(299) == b"HTTP/1.1 299 \r\n"


def test_the_statuses_nginx_closes_after_and_http_1_0() -> None:
    assert b"connection: close\r\n" in _whole(400, [])
    assert b"connection: close\r\n" not in _whole(404, [])
    assert b"connection: close\r\n" in _whole(200, [], keep_alive=False)
    # an HTTP/1.0 client that asked for keep-alive is told it is kept
    assert b"connection: keep-alive\r\n" in _whole(200, [], http10=True)


def test_streamed_bodies_are_chunked_for_1_1_and_delimited_by_close_for_1_0() -> None:
    head = response.head(200, [], True, False, False)
    response.connection_header(head, False)
    assert head.framing == response.CHUNKED and head.keep_alive
    assert head.streamed().endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert response.piece(b"abc", head.framing) == b"3\r\nabc\r\n"
    old = response.head(200, [], True, False, True)
    response.connection_header(old, True)
    assert old.framing == response.UNTIL_CLOSE and not old.keep_alive
    assert b"chunked" not in old.streamed() and b"connection: close" in old.streamed()
    assert response.piece(b"abc", old.framing) == b"abc"
    sized = response.head(200, [(b"content-length", b"3")], True, False, False)
    assert sized.framing == response.LENGTH
