"""Pure comparison: statuses, headers, JSON structure, kinds, ignores and tolerance."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shadow.compare import PointerError, Reply, Rules, compare, parse_pointer


def reply(body: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, headers, raw)


def diffs(a: Any, b: Any, rules: Rules | None = None) -> list[tuple[str, str]]:
    return [(d.path, d.kind) for d in compare(reply(a), reply(b), rules or Rules())]


def test_identical_bodies_match() -> None:
    doc = {"id": 1, "items": [{"sku": "a", "qty": 2}], "ok": True, "none": None}
    assert diffs(doc, json.loads(json.dumps(doc))) == []


def test_key_order_and_whitespace_do_not_matter() -> None:
    assert compare(reply(b'{"a": 1, "b": 2}'), reply(b'{"b":2,"a":1}'), Rules()) == []


def test_each_kind_is_reported_at_its_path() -> None:
    primary = {"id": 1, "name": "x", "gone": 1, "n": 1, "list": [1, 2], "nested": {"v": "a"}}
    shadow = {"id": 2, "name": 5, "new": 1, "n": 1, "list": [1, 2, 3], "nested": {"v": "b"}}
    assert diffs(primary, shadow) == [
        ("/gone", "missing"),
        ("/id", "value"),
        ("/list", "length"),
        ("/name", "type"),
        ("/nested/v", "value"),
        ("/new", "extra"),
    ]


def test_array_indices_collapse_to_star() -> None:
    primary = {"items": [{"price": 1}, {"price": 2}, {"price": 3}]}
    shadow = {"items": [{"price": 1}, {"price": 20}, {"price": 30}]}
    found = compare(reply(primary), reply(shadow), Rules())
    assert [(d.path, d.kind, d.primary, d.shadow) for d in found] == [
        ("/items/*/price", "value", "2", "20"),
        ("/items/*/price", "value", "3", "30"),
    ]


def test_same_elements_in_another_order_is_one_order_difference() -> None:
    assert diffs({"tags": ["a", "b", "c"]}, {"tags": ["c", "a", "b"]}) == [("/tags", "order")]


def test_status_difference() -> None:
    found = compare(reply({}, 200), reply({}, 404), Rules())
    assert [(d.path, d.kind, d.primary, d.shadow) for d in found] == [
        ("status", "status", "200", "404")
    ]


def test_noisy_headers_are_ignored_and_others_compared() -> None:
    a = reply({}, headers=(("date", "Mon"), ("x-request-id", "1"), ("content-type", "a/json")))
    b = reply({}, headers=(("date", "Tue"), ("x-request-id", "2"), ("content-type", "text/x")))
    assert [(d.path, d.kind) for d in compare(a, b, Rules())] == [("header:content-type", "value")]
    c = reply({}, headers=(("x-extra", "1"),))
    assert [(d.path, d.kind) for d in compare(a, c, Rules())] == [
        ("header:content-type", "missing"),
        ("header:x-extra", "extra"),
    ]


def test_set_cookie_compares_names_only() -> None:
    a = reply({}, headers=(("set-cookie", "sid=abc; Path=/"),))
    b = reply({}, headers=(("set-cookie", "sid=xyz; Path=/"),))
    c = reply({}, headers=(("set-cookie", "other=1"),))
    assert compare(a, b, Rules()) == []
    assert [d.path for d in compare(a, c, Rules())] == ["header:set-cookie"]


def test_content_length_is_ignored_only_when_bodies_are_compared() -> None:
    a = Reply(200, (("content-length", "10"),), None)
    b = Reply(200, (("content-length", "11"),), None)
    assert [d.path for d in compare(a, b, Rules())] == ["header:content-length"]
    a2 = Reply(200, (("content-length", "10"),), b"{}")
    b2 = Reply(200, (("content-length", "11"),), b"{ }")
    assert compare(a2, b2, Rules()) == []


def test_ignore_patterns_with_wildcards_and_headers() -> None:
    rules = Rules.build(["/meta", "/items/*/updated", "/*/ts", "header:x-version"])
    primary = {"meta": {"a": 1}, "items": [{"updated": 1, "p": 1}], "x": {"ts": 1}, "k": 1}
    shadow = {"meta": {"a": 2}, "items": [{"updated": 2, "p": 1}], "x": {"ts": 2}, "k": 2}
    assert diffs(primary, shadow, rules) == [("/k", "value")]
    a = reply({}, headers=(("x-version", "1"),))
    b = reply({}, headers=(("x-version", "2"),))
    assert compare(a, b, rules) == []


def test_escaped_pointer_segments() -> None:
    assert parse_pointer("/a~1b/c~0d") == ("a/b", "c~d")
    assert diffs({"a/b": 1}, {"a/b": 2}) == [("/a~1b", "value")]
    with pytest.raises(PointerError, match="must start with '/'"):
        parse_pointer("a/b")


def test_numeric_tolerance() -> None:
    rules = Rules(numeric_tolerance=0.01)
    assert diffs({"p": 1.000}, {"p": 1.005}, rules) == []
    assert diffs({"p": 1.0}, {"p": 1.02}, rules) == [("/p", "value")]
    assert diffs({"p": 1.0}, {"p": 1.005}) == [("/p", "value")]
    assert diffs({"flag": True}, {"flag": 1}) == [("/flag", "type")]


def test_non_json_bodies_compare_by_equality_with_an_excerpt() -> None:
    found = compare(reply(b"<p>hello world</p>"), reply(b"<p>hello there</p>"), Rules())
    assert [(d.path, d.kind) for d in found] == [("body", "body")]
    assert "@9" in found[0].primary and "world" in found[0].primary
    assert "there" in found[0].shadow
    assert compare(reply(b"same"), reply(b"same"), Rules()) == []


def test_json_against_non_json_is_a_body_difference() -> None:
    assert diffs({"a": 1}, b"Internal Server Error") == [("body", "body")]


def test_long_values_are_truncated() -> None:
    found = compare(reply({"a": "x" * 1000}), reply({"a": "y"}), Rules())
    assert len(found[0].primary) <= 200
