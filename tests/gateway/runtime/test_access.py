"""The admin API's access decisions: Host header, credentials, cross-site requests."""

from __future__ import annotations

import pytest

from gateway.runtime.access import AccessPolicy, Call, decide, host_allowed, split_host

LOOPBACK = AccessPolicy(listen=("127.0.0.1", 9901))
WILDCARD = AccessPolicy(listen=("0.0.0.0", 9901))


def call(
    method: str = "GET",
    path: str = "/admin/config",
    client: str | None = "127.0.0.1",
    host: bytes | None = b"127.0.0.1:9901",
    extra: dict[str, bytes] | None = None,
    **headers: bytes,
) -> Call:
    raw = [(b"host", host)] if host is not None else []
    items = {**(extra or {}), **headers}.items()
    raw += [(name.replace("_", "-").encode(), value) for name, value in items]
    return Call.of(method, path, client, raw)


def remote(path: str, token: bytes | None = None) -> Call:
    """A call from another pod to the admin port at this pod's IP."""
    extra = {"authorization": b"Bearer " + token} if token else {}
    return call(path=path, client="10.1.2.3", host=b"10.0.0.5:9901", extra=extra)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Example.COM:80", ("example.com", 80)),
        ("example.com", ("example.com", None)),
        ("example.com.:9901", ("example.com", 9901)),
        ("[::1]:9901", ("::1", 9901)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
        ("host:port", None),
        ("[::1", None),
        ("[::1]x", None),
        (":9901", None),
    ],
)
def test_split_host(text: str, expected: tuple[str, int | None] | None) -> None:
    assert split_host(text) == expected


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        (b"127.0.0.1:9901", True),
        (b"localhost:9901", True),
        (b"LOCALHOST:9901", True),
        (b"[::1]:9901", True),
        (b"127.0.0.1:9902", False),  # another port
        (b"localhost", False),  # port 80
        (b"evil.example:9901", False),  # a name that rebinds to 127.0.0.1
        (b"10.0.0.5:9901", False),
        (b"caf\xc3\xa9:9901", False),
    ],
)
def test_loopback_listener_accepts_its_own_names_only(host: bytes, allowed: bool) -> None:
    assert host_allowed(LOOPBACK, host) is allowed


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        (b"10.0.0.5:9901", True),  # a pod IP: Prometheus scraping
        (b"127.0.0.1:9901", True),  # the probes, from inside the pod
        (b"[fd00::5]:9901", True),
        (b"localhost:9901", True),
        (b"gateway.default.svc:9901", False),
        (b"10.0.0.5:80", False),
    ],
)
def test_wildcard_listener_accepts_addresses_not_names(host: bytes, allowed: bool) -> None:
    assert host_allowed(WILDCARD, host) is allowed


def test_allowed_hosts_add_names_with_or_without_a_port() -> None:
    policy = AccessPolicy(listen=("0.0.0.0", 9901), allowed_hosts=("admin.internal", "gw.svc:8443"))
    assert host_allowed(policy, b"admin.internal:9901")
    assert host_allowed(policy, b"admin.internal")
    assert host_allowed(policy, b"gw.svc:8443")
    assert not host_allowed(policy, b"gw.svc:9901")
    assert not host_allowed(policy, b"evil.example:9901")


def test_a_foreign_or_missing_host_is_refused_with_its_name() -> None:
    refusal = decide(LOOPBACK, call(host=b"evil.example:9901"))
    assert refusal is not None and refusal.status == 403
    assert 'host "evil.example:9901"' in refusal.error and "admin.allowed_hosts" in refusal.error
    missing = decide(LOOPBACK, call(host=None))
    assert missing is not None and missing.status == 403
    doubled = Call.of("GET", "/", "127.0.0.1", [(b"host", b"127.0.0.1:9901")] * 2)
    assert decide(LOOPBACK, doubled) is not None


def test_without_a_token_loopback_clients_only() -> None:
    assert decide(LOOPBACK, call()) is None
    assert decide(LOOPBACK, call(client="::1")) is None
    refusal = decide(LOOPBACK, call(client="10.1.2.3"))
    assert refusal is not None and refusal.status == 403
    assert decide(LOOPBACK, call(client=None)) is not None


def test_with_a_token_every_call_needs_it_even_from_loopback() -> None:
    policy = AccessPolicy(listen=("127.0.0.1", 9901), token="t0k")
    assert decide(policy, call(authorization=b"Bearer t0k")) is None
    assert decide(policy, call(authorization=b"bearer t0k")) is None
    for given in (b"Bearer wrong", b"t0k", b"Basic t0k", b"Bearer caf\xc3\xa9", b"Bearer \xff"):
        refusal = decide(policy, call(authorization=given))
        assert refusal is not None and refusal.status == 401, given
    refusal = decide(policy, call(method="POST", path="/admin/reload"))
    assert refusal is not None and refusal.status == 401
    doubled = Call.of(
        "GET",
        "/admin/config",
        "127.0.0.1",
        [(b"host", b"127.0.0.1:9901"), (b"authorization", b"Bearer t0k")] * 2,
    )
    assert decide(policy, doubled) is not None


def test_the_metrics_token_opens_metrics_only() -> None:
    policy = AccessPolicy(listen=("0.0.0.0", 9901), token="adm", metrics_token="scrape")
    assert decide(policy, remote("/metrics", b"scrape")) is None
    assert decide(policy, remote("/metrics", b"adm")) is None
    for path in ("/admin/config", "/healthz", "/metrics/"):
        refusal = decide(policy, remote(path, b"scrape"))
        assert refusal is not None and refusal.status == 401, path


def test_without_a_metrics_token_metrics_needs_the_admin_token() -> None:
    policy = AccessPolicy(listen=("127.0.0.1", 9901), token="adm")
    refusal = decide(policy, call(path="/metrics", authorization=b"Bearer scrape"))
    assert refusal is not None and refusal.status == 401
    assert decide(policy, call(path="/metrics", authorization=b"Bearer adm")) is None


def test_a_metrics_token_without_admin_token_keeps_loopback_open() -> None:
    policy = AccessPolicy(listen=("0.0.0.0", 9901), metrics_token="scrape")
    assert decide(policy, call(path="/metrics")) is None
    assert decide(policy, remote("/metrics", b"scrape")) is None
    refusal = decide(policy, remote("/metrics"))
    assert refusal is not None and refusal.status == 401
    refusal = decide(policy, remote("/admin/config", b"scrape"))
    assert refusal is not None and refusal.status == 403


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),
        ({"content_type": b"application/json"}, False),
        ({"content_type": b"Application/JSON; charset=utf-8"}, False),
        ({"origin": b"http://127.0.0.1:9901"}, False),
        ({"origin": b"http://127.0.0.1:9901", "content_type": b"application/json"}, False),
        ({"origin": b"http://evil.example"}, True),
        ({"origin": b"null"}, True),
        ({"origin": b"http://127.0.0.1:9902"}, True),
        ({"content_type": b"text/plain"}, True),
        ({"content_type": b"application/x-www-form-urlencoded"}, True),
        ({"content_type": b"multipart/form-data; boundary=x"}, True),
    ],
)
def test_without_a_token_state_changes_refuse_cross_site_requests(
    headers: dict[str, bytes], refused: bool
) -> None:
    refusal = decide(LOOPBACK, call(method="POST", path="/admin/reload", extra=headers))
    assert (refusal is not None) is refused
    if refusal is not None:
        assert refusal.status == 403 and "POST" in refusal.error


def test_reads_are_not_subject_to_the_cross_site_rule() -> None:
    assert decide(LOOPBACK, call(origin=b"http://evil.example", content_type=b"text/plain")) is None


def test_with_a_token_the_bearer_header_is_the_cross_site_defence() -> None:
    policy = AccessPolicy(listen=("127.0.0.1", 9901), token="t0k")
    simple = call(method="POST", path="/admin/reload", origin=b"http://evil.example")
    refusal = decide(policy, simple)
    assert refusal is not None and refusal.status == 401
    authorised = call(
        method="POST",
        path="/admin/reload",
        origin=b"http://tool.example",
        authorization=b"Bearer t0k",
    )
    assert decide(policy, authorised) is None
