"""The report rendered as text, JSON and HTML."""

from __future__ import annotations

import json

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
