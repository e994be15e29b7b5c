"""The report rendered as text, JSON and HTML."""

from __future__ import annotations

import json
from dataclasses import replace

from shadow.report.aggregate import build
from shadow.report.render import render, to_html, to_json, to_text
from tests.shadow.report.test_aggregate import PRICE, row


def test_three_formats() -> None:
    rows = [row(n, (PRICE,) if n % 4 == 0 else ()) for n in range(200)]
    report = build(rows)
    text = to_text(report)
    assert "orders  GET /api/orders/{id}  (shadow: v2)" in text
    assert "compared 200  matched 150 (75.0%)  differing 50" in text
    assert "/price" in text and "req-0 (10 -> 11)" in text
    data = json.loads(to_json(report))
    assert data["endpoints"][0]["fields"][0]["path"] == "/price"
    assert data["endpoints"][0]["match_rate"] == 0.75
    page = to_html(report)
    assert page.startswith("<!doctype html>") and "<svg" in page and "<polyline" in page
    assert "/api/orders/{id}" in page and "src=" not in page and "href=" not in page
    assert to_text(build([])) == "No shadow results stored yet.\n"


def test_render_picks_the_format() -> None:
    report = build([row(1)])
    assert render(report, "json") == to_json(report)
    assert render(report, "text") == to_text(report)


def test_write_endpoints_say_whether_the_writes_behave_the_same() -> None:
    same = [replace(row(n), method="PATCH") for n in range(3)]
    differ = [replace(row(n, (PRICE,)), method="POST", endpoint="/api/orders") for n in range(2)]
    report = build([*same, *differ, row(9)])
    parity = {(e.method, e.endpoint): e.write_parity for e in report.endpoints}
    assert parity == {
        ("GET", "/api/orders/{id}"): None,
        ("PATCH", "/api/orders/{id}"): "same",
        ("POST", "/api/orders"): "different",
    }
    text = to_text(report)
    assert text.count("writes (dry run): same") == 1
    assert text.count("writes (dry run): different") == 1
    data = json.loads(to_json(report))
    assert [e["write_parity"] for e in data["endpoints"]] == [None, "same", "different"]
