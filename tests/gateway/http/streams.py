"""Test support: hypothesis strategies generating HTTP/1.1 request byte streams for the
fuzz tests of the framing and the connection.

A stream is one to four requests, each mostly well-formed with now and then a hostile
part (method, target, version, line ending, a header, a body that does not match its
framing, trailing noise), or plain random bytes."""

from __future__ import annotations

from hypothesis import strategies as st

_METHODS = ([b"GET", b"POST", b"HEAD", b"PUT"], [b"CONNECT", b"get", b"PRI", b"G\x00T", b""])
_TARGETS = ([b"/", b"/a?b=1", b"/a#f", b"/%2F.."], [b"http://evil/x", b"*", b"/a b", b"a:443"])
_VERSIONS = ([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b"HTTP/1.1 x"])
_EOLS = ([b"\r\n"], [b"\n", b"\r", b"\r\r\n"])
_HEADERS = (
    [
        b"Host: a",
        b"Content-Length: 3",
        b"Content-Length: 0",
        b"Transfer-Encoding: chunked",
        b"Connection: close",
        b"Connection: keep-alive",
        b"Connection: upgrade",
        b"Upgrade: websocket",
        b"Upgrade: h2c",
        b"Expect: 100-continue",
        b"X-Long: " + b"v" * 300,
    ],
    [
        b"Host: b",
        b"Host: ",
        b"Host: a/b",
        b"Content-Length: +3",
        b"Content-Length: 3, 3",
        b"Content-Length: 99999999999999999999",
        b"Transfer-Encoding: gzip, chunked",
        b"Transfer-Encoding: chunked, gzip",
        b"X-A : 1",
        b" folded",
        b"X-N\x00: 1",
    ],
)
_CHUNKED = ([b"3\r\nabc\r\n0\r\n\r\n", b"0\r\n\r\n", b"0\r\nT: 1\r\n\r\n"], [b"zz\r\n"])
_HOSTILE_BODIES = [b"abc", b"3\nabc\n0\n\n", b"ab", b"0\r\n\r\n"]


def _part(draw: st.DrawFn, choices: tuple[list[bytes], list[bytes]]) -> bytes:
    """Mostly a well-formed choice, now and then a hostile one."""
    plain, hostile = choices
    return draw(st.sampled_from(hostile if draw(st.integers(0, 7)) == 0 else plain))


@st.composite
def request_bytes(draw: st.DrawFn) -> bytes:
    eol = _part(draw, _EOLS)
    line = b" ".join([_part(draw, _METHODS), _part(draw, _TARGETS), _part(draw, _VERSIONS)])
    headers = [b"Host: a"] if draw(st.integers(0, 5)) else []
    headers += [_part(draw, _HEADERS) for _ in range(draw(st.integers(0, 5)))]
    headers = draw(st.permutations(headers))
    if draw(st.integers(0, 7)) == 0:
        body = draw(st.sampled_from(_HOSTILE_BODIES))
    elif b"Transfer-Encoding: chunked" in headers:
        body = _part(draw, _CHUNKED)
    else:
        body = b"abc" if b"Content-Length: 3" in headers else b""
    noise = draw(st.binary(max_size=4)) if draw(st.integers(0, 7)) == 0 else b""
    return eol.join([line, *headers, b""]) + eol + body + noise


streams = st.integers(0, 4).flatmap(
    lambda n: (
        st.binary(max_size=300)
        if n == 0
        else st.lists(request_bytes(), min_size=1, max_size=4).map(b"".join)
    )
)
