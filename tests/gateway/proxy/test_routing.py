"""Routing decisions without sockets: first match wins, matching rules, weights, stickiness,
overrides and ejection; hypothesis checks the sticky properties."""

from __future__ import annotations

import random
from textwrap import dedent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import parse
from gateway.proxy.paths import normalise
from gateway.proxy.routing import Facts, Refused, Table, facts_from

DOC = dedent("""\
    version: 1
    backends:
      legacy: {url: "http://127.0.0.1:9001", legacy: true}
      users-v2: {url: "http://127.0.0.1:9002"}
      admin: {url: "http://127.0.0.1:9003"}
    routes:
      - name: beta
        match: {prefix: /api/users, headers: {x-beta: "1"}}
        split: {users-v2: 100}
      - name: users
        match: {prefix: /api/users, methods: [GET, POST]}
        split: {users-v2: %(new)d, legacy: %(old)d}
        sticky: {header: x-user-id}
        override: {header: x-strangler-backend}
        fallback: legacy
      - name: search
        match: {regex: "/api/search/[0-9]+", query: {q: {present: true}}}
        split: {users-v2: 1}
      - name: admin
        match: {exact: /api/admin}
        split: {admin: 1}
      - name: cookie
        match: {prefix: /web}
        split: {users-v2: 50, legacy: 50}
        sticky: {cookie: strangler_uid}
      - name: default
        split: {legacy: 100}
    """)


def table(new: int = 20, old: int = 80) -> Table:
    return Table(parse(DOC % {"new": new, "old": old}))


def facts(path: str, method: str = "GET", **headers: str) -> Facts:
    return facts_from(method, path.encode(), headers)


def route_of(t: Table, f: Facts, draw: float = 0.5) -> str:
    decision = t.decide(f, draw)
    assert decision is not None
    return decision.route.name


def test_first_match_wins_and_matching_rules() -> None:
    t = table()
    assert route_of(t, facts("/api/users", **{"x-beta": "1"})) == "beta"
    assert route_of(t, facts("/api/users/7")) == "users"
    assert route_of(t, facts("/api/usersX")) == "default"
    assert route_of(t, facts("/api/users", method="DELETE")) == "default"
    assert route_of(t, facts("/api/admin")) == "admin"
    assert route_of(t, facts("/api/admin/x")) == "default"
    search = facts_from("GET", b"/api/search/12", {}, {"q": "x"})
    assert route_of(t, search) == "search"
    assert route_of(t, facts_from("GET", b"/api/search/12", {}, {})) == "default"
    assert route_of(t, facts_from("GET", b"/api/search/12x", {}, {"q": "x"})) == "default"


def test_dot_segments_are_resolved_before_matching() -> None:
    assert normalise(b"/api/users/../admin") == "/api/admin"
    assert normalise(b"/api/%75sers/./7") == "/api/users/7"
    assert normalise(b"/a/%2f/b") == "/a/%2F/b"
    assert route_of(table(), facts("/api/users/../admin")) == "admin"


@pytest.mark.parametrize("raw", [b"/api/users/..%2Fadmin", b"/api/users/%2e%2e/admin"])
def test_encoded_separator_that_changes_the_route_is_refused(raw: bytes) -> None:
    t = table()
    with pytest.raises(Refused) as info:
        t.decide(facts_from("GET", raw, {}), 0.5, raw_path=raw)
    assert info.value.status == 400


def test_encoded_slash_that_keeps_the_route_is_allowed() -> None:
    raw = b"/api/users/a%2Fb"
    decision = table().decide(facts_from("GET", raw, {}), 0.5, raw_path=raw)
    assert decision is not None and decision.route.name == "users"


def test_weighted_split_follows_the_draw() -> None:
    t = table(20, 80)
    chosen = [t.decide(facts("/api/users"), i / 1000) for i in range(1000)]
    assert sum(d is not None and d.backend == "users-v2" for d in chosen) == 200


def test_override_header_forces_a_backend_of_the_route() -> None:
    t = table(0, 100)
    decision = t.decide(facts("/api/users", **{"x-strangler-backend": "users-v2"}), 0.9)
    assert decision is not None and (decision.backend, decision.reason) == ("users-v2", "override")
    unknown = t.decide(facts("/api/users", **{"x-strangler-backend": "admin"}), 0.9)
    assert unknown is not None and unknown.backend == "legacy" and unknown.override_ignored


def test_ejected_backend_share_goes_to_fallback() -> None:
    t = table(100, 0)
    decision = t.decide(facts("/api/users"), 0.1, ejected=frozenset({"users-v2"}))
    assert decision is not None and (decision.backend, decision.reason) == ("legacy", "ejected")


def test_cookie_stickiness_hands_out_a_cookie() -> None:
    t = table()
    first = t.decide(facts("/web"), 0.0, new_user_id="u-1")
    assert first is not None and first.set_cookie == ("strangler_uid", "u-1")
    again = t.decide(facts_from("GET", b"/web", {}, {}, {"strangler_uid": "u-1"}), 0.99)
    assert again is not None and again.backend == first.backend and again.set_cookie is None


def sticky_backend(t: Table, user: str) -> str:
    decision = t.decide(facts("/api/users", **{"x-user-id": user}), random.random())
    assert decision is not None
    return decision.backend


def test_sticky_ratio_holds_over_many_users() -> None:
    t = table(20, 80)
    share = sum(sticky_backend(t, f"user-{i}") == "users-v2" for i in range(20000)) / 20000
    assert abs(share - 0.20) < 0.01


@settings(max_examples=200, deadline=None)
@given(
    users=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30),
    old=st.integers(0, 99),
    step=st.integers(1, 100),
)
def test_raising_new_weight_only_moves_users_from_legacy_to_new(
    users: list[str], old: int, step: int
) -> None:
    new = min(old + step, 100)
    before, after = table(old, 100 - old), table(new, 100 - new)
    for user in users:
        b, a = sticky_backend(before, user), sticky_backend(after, user)
        assert b == a or (b, a) == ("legacy", "users-v2")
        assert sticky_backend(before, user) == b  # same weights, same backend


@settings(max_examples=100, deadline=None)
@given(
    users=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30),
    new=st.integers(0, 100),
    scale=st.integers(1, 7),
)
def test_equivalent_weights_give_the_same_assignment(
    users: list[str], new: int, scale: int
) -> None:
    if new in (0, 100):
        return
    a, b = table(new, 100 - new), table(new * scale, (100 - new) * scale)
    for user in users:
        assert sticky_backend(a, user) == sticky_backend(b, user)


PATH_ONLY = dedent("""\
    version: 1
    backends:
      legacy: {url: "http://127.0.0.1:9001", legacy: true}
      users-v2: {url: "http://127.0.0.1:9002"}
    routes:
      - name: users
        match: {prefix: /api/users, methods: [GET]}
        split: {users-v2: 50, legacy: 50}
        sticky: {header: x-user-id}
      - name: default
        split: {legacy: 100}
    """)


def test_a_path_only_table_remembers_routes_and_refusals_per_method_and_path() -> None:
    t = Table(parse(PATH_ONLY))
    assert t.path_only and not table().path_only  # header and query matches: never memo
    raw, smuggled = b"/api/users/7", b"/api/users/..%2Fadmin"

    def decide(method: str, user: str | None, path: bytes = raw) -> tuple[str, str, str]:
        headers = {"x-user-id": user} if user else {}
        decision = t.decide(facts_from(method, path, headers), 0.5, raw_path=path)
        assert decision is not None
        return decision.route.name, decision.reason, decision.backend

    for _ in range(2):  # the second time from the memo: the same answers
        assert decide("GET", "u-1")[:2] == ("users", "sticky")
        assert decide("POST", None)[0] == "default"
        # the backend is still chosen per request, from the user's header
        assert {decide("GET", f"u-{i}")[2] for i in range(50)} == {"users-v2", "legacy"}
        with pytest.raises(Refused):
            decide("GET", None, smuggled)
    long = b"/api/users/" + b"x" * 600
    assert decide("GET", "u-1", long)[0] == "users"
    assert ("GET", long) not in t._memo and ("GET", raw) in t._memo  # bounded memory
