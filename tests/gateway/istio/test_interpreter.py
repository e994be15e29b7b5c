"""The interpreter of Istio's HTTP routing, on hand-written VirtualService entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.gateway.istio.interpreter import Request, interpret, match_entry, string_matches

SAMPLES = Path(__file__).parent / "samples"


def dest(host: str, weight: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"destination": {"host": host}}
    if weight is not None:
        out["weight"] = weight
    return out


def test_first_matching_entry_wins_and_no_match_is_none() -> None:
    http = [
        {"name": "a", "match": [{"uri": {"prefix": "/a"}}], "route": [dest("x")]},
        {"name": "b", "match": [{"uri": {"prefix": "/"}}], "route": [dest("y")]},
    ]
    assert interpret(http, Request("GET", "/a/1")).name == "a"  # type: ignore[union-attr]
    assert interpret(http, Request("GET", "/b")).name == "b"  # type: ignore[union-attr]
    assert interpret(http[:1], Request("GET", "/b")) is None


def test_match_entries_or_fields_and() -> None:
    http = [
        {
            "name": "a",
            "match": [
                {"uri": {"exact": "/x"}, "method": {"exact": "GET"}},
                {"headers": {"x-k": {"exact": "1"}}},
            ],
            "route": [dest("x")],
        }
    ]
    assert interpret(http, Request("GET", "/x")) is not None
    assert interpret(http, Request("POST", "/x")) is None
    assert interpret(http, Request("POST", "/y", {"x-k": "1"})) is not None


def test_uri_semantics() -> None:
    prefix = {"uri": {"prefix": "/api/users"}}
    assert match_entry(prefix, Request("GET", "/api/usersX"))  # a plain string prefix
    exact = {"uri": {"exact": "/api/users"}}
    assert match_entry(exact, Request("GET", "/api/users", query={"a": "1"}))  # query ignored
    regex = {"uri": {"regex": "/api/[0-9]+"}}
    assert match_entry(regex, Request("GET", "/api/12"))
    assert not match_entry(regex, Request("GET", "/api/12/x"))  # a full match


def test_header_and_query_semantics() -> None:
    assert string_matches({}, "") and not string_matches({}, None)  # {} means present
    assert string_matches({"prefix": "ab"}, "abc")
    entry: dict[str, Any] = {"headers": {"x-a": {}}, "withoutHeaders": {"x-b": {}}}
    assert match_entry(entry, Request("GET", "/", {"x-a": "v"}))
    assert not match_entry(entry, Request("GET", "/", {"x-a": "v", "x-b": "1"}))
    assert not match_entry(entry, Request("GET", "/", {}))
    negated = {"withoutHeaders": {"x-b": {"exact": "1"}}}
    assert match_entry(negated, Request("GET", "/", {"x-b": "2"}))
    assert not match_entry(negated, Request("GET", "/", {"x-b": "1"}))
    assert match_entry(
        {"headers": {"X-Upper": {"exact": "1"}}}, Request("GET", "/", {"x-upper": "1"})
    )
    query = {"queryParams": {"q": {"regex": "[0-9]+"}}}
    assert match_entry(query, Request("GET", "/", query={"q": "42"}))
    assert not match_entry(query, Request("GET", "/", query={"q": "x"}))


def test_weights_are_relative_and_a_single_destination_gets_all() -> None:
    http = [{"route": [dest("a", 1), dest("b", 3), dest("c", 0)]}]
    outcome = interpret(http, Request("GET", "/"))
    assert outcome is not None
    assert outcome.shares == {("a", None, None): 0.25, ("b", None, None): 0.75}
    single = interpret([{"route": [dest("a")]}], Request("GET", "/"))
    assert single is not None and single.shares == {("a", None, None): 1.0}


def test_istio_sample_with_a_header_route_first() -> None:
    vs = yaml.safe_load((SAMPLES / "reviews-jason-v2-v3.yaml").read_text())
    http = vs["spec"]["http"]
    jason = interpret(http, Request("GET", "/reviews/1", {"end-user": "jason"}))
    other = interpret(http, Request("GET", "/reviews/1", {"end-user": "ann"}))
    assert jason is not None and jason.shares == {("reviews", None, "v2"): 1.0}
    assert other is not None and other.shares == {("reviews", None, "v3"): 1.0}
