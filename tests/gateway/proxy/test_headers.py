"""Header rewriting (pure), and on the wire a Connection header naming Host."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from gateway.proxy import headers as rewriting
from gateway.proxy.headers import TrustedProxies, request_headers, response_headers
from tests.gateway.http.wire import converse, open_site


def test_trusted_proxy_forwarded_headers_are_extended() -> None:
    trusted = TrustedProxies(["10.0.0.0/8"])
    incoming = [
        (b"host", b"api.example.com"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"public.example.com"),
    ]
    out = dict(request_headers(incoming, "10.1.1.1", "http", "10.1.1.1" in trusted).headers)
    assert out[b"x-forwarded-for"] == b"1.2.3.4, 10.1.1.1"
    assert out[b"x-forwarded-proto"] == b"https"
    assert out[b"x-forwarded-host"] == b"public.example.com"
    assert out[b"host"] == b"api.example.com"
    assert "8.8.8.8" not in trusted and "not-an-ip" not in trusted


def test_untrusted_forwarded_headers_are_replaced() -> None:
    incoming = [(b"host", b"h"), (b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"ftp")]
    out = dict(request_headers(incoming, "192.0.2.9", "http", False).headers)
    assert out[b"x-forwarded-for"] == b"192.0.2.9" and out[b"x-forwarded-proto"] == b"http"


def test_hop_by_hop_and_connection_named_headers_are_removed() -> None:
    incoming = [
        (b"host", b"h"),
        (b"connection", b"x-a, Keep-Alive"),
        (b"x-a", b"1"),
        (b"keep-alive", b"5"),
        (b"te", b"trailers"),
        (b"transfer-encoding", b"chunked"),
        (b"proxy-connection", b"x"),
        (b"upgrade", b"h2c"),
        (b"content-length", b"5"),
        (b"traceparent", b"00-1-2-01"),
    ]
    out = request_headers(incoming, "127.0.0.1", "http", False, rewrite_host=b"backend:81")
    names = [n for n, _ in out.headers]
    assert names.count(b"host") == 1 and dict(out.headers)[b"host"] == b"backend:81"
    for gone in (
        b"connection",
        b"x-a",
        b"keep-alive",
        b"te",
        b"transfer-encoding",
        b"proxy-connection",
        b"upgrade",
        b"content-length",
    ):
        assert gone not in names
    assert dict(out.headers)[b"traceparent"] == b"00-1-2-01"
    assert len(out.request_id) == 32


def test_response_headers_drop_hop_by_hop_and_add_extras() -> None:
    out = response_headers(
        [
            (b"connection", b"close, x-b"),
            (b"x-b", b"1"),
            (b"content-type", b"text/plain"),
            (b"transfer-encoding", b"chunked"),
        ],
        [(b"x-strangler-route", b"r")],
    )
    assert out == [(b"content-type", b"text/plain"), (b"x-strangler-route", b"r")]


def test_connection_cannot_remove_host() -> None:
    incoming = [(b"host", b"shop.example"), (b"connection", b"Host, x-a"), (b"x-a", b"1")]
    out = request_headers(incoming, "127.0.0.1", "http", False)
    assert dict(out.headers)[b"host"] == b"shop.example" and out.host == b"shop.example"
    assert b"x-a" not in dict(out.headers)


async def test_connection_host_on_the_wire_keeps_the_clients_host() -> None:
    with open_site() as site:
        responses, _ = await converse(
            site.port,
            b"GET /h HTTP/1.1\r\nHost: shop.example\r\nConnection: Host\r\n\r\n",
            timeout=1,
        )
    assert responses[0].status == 200
    echoed = dict(responses[0].json()["headers"])
    assert echoed["host"] == "shop.example" and echoed["x-forwarded-host"] == "shop.example"


def test_claims_of_the_client_address_pass_only_from_trusted_proxies() -> None:
    claims = [(b"x-real-ip", b"6.6.6.6"), (b"forwarded", b"for=6.6.6.6"), (b"true-client-ip", b"6")]
    untrusted = request_headers([(b"host", b"a"), *claims], "10.0.0.9", "http", trusted=False)
    assert not {n for n, _ in untrusted.headers} & {n for n, _ in claims}
    trusted = request_headers([(b"host", b"a"), *claims], "10.0.0.9", "http", trusted=True)
    assert {n for n, _ in claims} <= {n for n, _ in trusted.headers}


_NAMES = st.sampled_from(
    [b"host", b"x-request-id", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
     b"forwarded", b"x-real-ip", b"connection", b"keep-alive", b"te", b"upgrade", b"expect",
     b"content-length", b"transfer-encoding", b"x-a", b"accept", b"cookie"]
)  # fmt: skip
_VALUES = st.sampled_from([b"1", b"keep-alive", b"close", b"x-a", b"x-a, te", b"h"])


@given(
    incoming=st.lists(st.tuples(_NAMES, _VALUES), max_size=12),
    trusted=st.booleans(),
    rewrite=st.sampled_from([None, b"backend.internal"]),
)
def test_the_one_pass_rewrite_agrees_with_the_general_one(
    incoming: list[tuple[bytes, bytes]], trusted: bool, rewrite: bytes | None
) -> None:
    fast = request_headers(incoming, "192.0.2.1", "http", trusted, rewrite)
    general = rewriting._request_headers(incoming, "192.0.2.1", "http", trusted, rewrite)
    if not any(n == b"x-request-id" for n, _ in incoming):  # a fresh id each: the same place
        assert fast.request_id != general.request_id
        general.headers = [
            (n, fast.request_id if v == general.request_id else v) for n, v in general.headers
        ]
        general.request_id = fast.request_id
    assert (fast.headers, fast.request_id, fast.host) == (
        general.headers,
        general.request_id,
        general.host,
    )


def test_request_ids_are_32_hex_digits_never_repeated_across_batches() -> None:
    ids = [rewriting.new_request_id() for _ in range(3 * rewriting.ID_BATCH + 5)]
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_worker_does_not_repeat_its_parents_request_ids() -> None:
    rewriting.new_request_id()  # the parent holds a drawn batch when it forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, b"".join(rewriting.new_request_id() for _ in range(8)))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = b"".join(rewriting.new_request_id() for _ in range(8))
    assert len(child) == len(parent) == 8 * 32
    assert child != parent
