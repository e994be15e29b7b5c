"""Capture rules (pure): which writes become events, and what goes in them."""

from __future__ import annotations

import json

from gateway.capture.rules import (
    CompiledRule,
    Doubt,
    Event,
    Exchange,
    capture,
    compile_rules,
    find_rule,
    resolve_pointer,
)
from gateway.config import Capture

RULES = compile_rules(
    (
        Capture(
            "POST",
            "/api/orders",
            "OrderCreated",
            "order",
            "response:/id",
            backends=frozenset({"legacy"}),
        ),
        Capture(
            "PUT",
            "/api/orders/{order_id}",
            "OrderUpdated",
            "order",
            "path:order_id",
            payload="request",
            schema_version=2,
            backends=frozenset({"legacy"}),
        ),
        Capture(
            "POST",
            "/api/users",
            "UserRegistered",
            "user",
            "request:/email",
            payload="none",
            backends=frozenset({"legacy"}),
        ),
        Capture(
            "DELETE",
            "/api/users/{id}",
            "UserDeleted",
            "user",
            "header:x-user-id",
            backends=frozenset({"legacy"}),
        ),
    )
)


def exchange(
    method: str,
    path: str,
    status: int = 201,
    request: bytes | None = b"{}",
    response: bytes | None = b'{"id": 7}',
    **headers: str,
) -> Exchange:
    return Exchange(
        "orders",
        method,
        path,
        "legacy",
        status,
        "req-1",
        headers,
        request,
        {"content-type": "application/json"},
        response,
        "00-aa-bb-01",
    )


def run(method: str, path: str, **kw: object) -> Event | Doubt | None:
    found = find_rule(RULES, method, path, "legacy")
    assert found is not None
    return capture(found[0], found[1], exchange(method, path, **kw), now=100.0)  # type: ignore[arg-type]


def test_rule_lookup_by_method_template_and_backend() -> None:
    assert find_rule(RULES, "POST", "/api/orders", "legacy") is not None
    assert find_rule(RULES, "POST", "/api/orders", "orders-v2") is None
    assert find_rule(RULES, "POST", "/api/orders", None) is not None  # any backend
    assert find_rule(RULES, "GET", "/api/orders", "legacy") is None
    found = find_rule(RULES, "PUT", "/api/orders/42", "legacy")
    assert found is not None and found[1] == {"order_id": "42"}
    assert find_rule(RULES, "PUT", "/api/orders/42/items", "legacy") is None


def test_event_from_response_id_with_debezium_columns() -> None:
    event = run("POST", "/api/orders", request=b'{"item": "book"}')
    assert isinstance(event, Event)
    assert (event.aggregatetype, event.aggregateid, event.type) == ("order", "7", "OrderCreated")
    assert event.payload == {"request": {"item": "book"}, "response": {"id": 7}}
    assert event.headers == {
        "schema_version": 1,
        "request_id": "req-1",
        "route": "orders",
        "source": "gateway",
        "traceparent": "00-aa-bb-01",
    }
    assert event.occurred_at == 100.0 and len(event.id) == 36
    assert Event.from_json(json.loads(json.dumps(event.to_json()))) == event


def test_ids_from_path_request_and_header() -> None:
    put = run("PUT", "/api/orders/42", status=200, request=b'{"qty": 2}')
    assert isinstance(put, Event) and put.aggregateid == "42"
    assert put.payload == {"request": {"qty": 2}} and put.headers["schema_version"] == 2
    user = run("POST", "/api/users", request=b'{"email": "a@b.c"}')
    assert isinstance(user, Event) and user.aggregateid == "a@b.c" and user.payload == {}
    gone = run("DELETE", "/api/users/9", status=204, response=b"", **{"x-user-id": "u9"})
    assert isinstance(gone, Event) and gone.aggregateid == "u9"


def test_non_2xx_produces_nothing() -> None:
    assert run("POST", "/api/orders", status=422) is None
    assert run("POST", "/api/orders", status=500) is None


def test_missing_id_or_unkept_body_is_a_doubt_not_a_drop() -> None:
    missing = run("POST", "/api/orders", response=b'{"no": "id"}')
    assert isinstance(missing, Doubt)
    assert missing.reason == "aggregate id response:/id not found in the response body"
    assert missing.request_id == "req-1" and missing.event_type == "OrderCreated"
    too_big = run("POST", "/api/orders", response=None)
    assert isinstance(too_big, Doubt)
    assert too_big.reason == "response body was larger than the capture limit"
    not_json = run("POST", "/api/orders", response=b"<html>")
    assert isinstance(not_json, Doubt) and not_json.reason == "response body is not JSON"
    assert Doubt.from_json(json.loads(json.dumps(not_json.to_json()))) == not_json


def test_json_pointer() -> None:
    doc = {"a": [{"b/c": 1, "m~n": 2}]}
    assert resolve_pointer(doc, "/a/0/b~1c") == 1
    assert resolve_pointer(doc, "/a/0/m~0n") == 2
    assert resolve_pointer(doc, "") == doc


def _integer_rule() -> tuple[CompiledRule, dict[str, str]]:
    rules = compile_rules(
        (
            Capture(
                "PATCH",
                "/api/orders/{id}",
                "OrderUpdated",
                "order",
                "path:id",
                payload="none",
                backends=frozenset({"legacy"}),
                id_type="integer",
            ),
        )
    )
    found = find_rule(rules, "PATCH", "/api/orders/01", "legacy")
    assert found is not None
    return found


def test_integer_ids_are_normalised_as_the_monolith_reads_them() -> None:
    rule, params = _integer_rule()
    event = capture(rule, params, exchange("PATCH", "/api/orders/01", 200))
    assert isinstance(event, Event) and event.aggregateid == "1"
    for raw, expected in (("007", "7"), ("+12", "12"), ("0", "0")):
        e = capture(rule, {"id": raw}, exchange("PATCH", f"/api/orders/{raw}", 200))
        assert isinstance(e, Event) and e.aggregateid == expected


def test_a_non_integer_id_is_a_doubt_naming_it() -> None:
    rule, _ = _integer_rule()
    doubt = capture(rule, {"id": "abc"}, exchange("PATCH", "/api/orders/abc", 200))
    assert isinstance(doubt, Doubt)
    assert doubt.reason == "aggregate id path:id is 'abc', not an integer (id_type: integer)"
    fullwidth = capture(rule, {"id": "１"}, exchange("PATCH", "/api/orders/%EF%BC%91", 200))
    assert isinstance(fullwidth, Doubt)


def test_a_reverse_sync_write_makes_no_event() -> None:
    assert run("POST", "/api/orders", **{"x-strangler-origin": "reverse-sync"}) is None
    assert isinstance(run("POST", "/api/orders", **{"x-other": "reverse-sync"}), Event)
