"""The shadow report as text, JSON or one self-contained HTML page (pure)."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from datetime import UTC, datetime

from shadow.report.aggregate import Example, Point, Report


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def to_json(report: Report) -> str:
    data = asdict(report)
    for endpoint, source in zip(data["endpoints"], report.endpoints, strict=True):
        endpoint["match_rate"] = source.match_rate
        endpoint["write_parity"] = source.write_parity
    return json.dumps(data, indent=2)


def to_text(report: Report) -> str:
    if not report.endpoints:
        return "No shadow results stored yet.\n"
    lines = [f"Shadow report: {_when(report.since)} .. {_when(report.until)}", ""]
    for e in report.endpoints:
        lines.append(f"{e.route}  {e.method} {e.endpoint}  (shadow: {e.shadow_backend or '-'})")
        lines.append(
            f"  compared {e.compared}  matched {e.matched} ({_pct(e.matched, e.compared)})"
            f"  differing {e.differing}  errors {e.errors}  shed {e.shed}  skipped {e.skipped}"
        )
        if e.write_parity is not None:
            lines.append(f"  writes (dry run): {e.write_parity}")
        lines.append(
            f"  latency ms: primary p50 {_ms(e.primary_ms.p50)} p99 {_ms(e.primary_ms.p99)}"
            f"  shadow p50 {_ms(e.shadow_ms.p50)} p99 {_ms(e.shadow_ms.p99)}"
        )
        if e.error_reasons:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(e.error_reasons.items()))
            lines.append(f"  errors: {reasons}")
        if e.skip_reasons:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(e.skip_reasons.items()))
            lines.append(f"  skipped: {reasons}")
        if e.fields:
            lines.append(f"  {'field':<40} {'kind':<8} {'raw':>6} {'noise':>6}  examples")
            for f in e.fields:
                noise = "-" if f.noise is None else str(f.noise)
                examples = ", ".join(_example(x) for x in f.examples)
                lines.append(f"  {f.path:<40} {f.kind:<8} {f.raw:>6} {noise:>6}  {examples}")
        if e.suppressed:
            lines.append(f"  noise suppressed: {', '.join(e.suppressed)}")
        lines.append("")
    return "\n".join(lines)


def _example(x: Example) -> str:
    if x.primary.startswith("sha256:") or x.shadow.startswith("sha256:"):
        return x.request_id
    if not (x.primary or x.shadow):
        return x.request_id
    return f"{x.request_id} ({x.primary or '∅'} -> {x.shadow or '∅'})"


def _chart(points: list[Point]) -> str:
    if not points:
        return "<p>No comparisons yet.</p>"
    w, h, pad = 720, 220, 32
    t0 = min(p.at for p in points)
    t1 = max(p.at for p in points)
    span = max(t1 - t0, 1e-9)
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    routes = sorted({p.route for p in points})
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="match rate over time">',
        f'<rect x="{pad}" y="{pad // 2}" width="{w - 2 * pad}" height="{h - 2 * pad}" '
        'fill="none" stroke="#ccc"/>',
    ]
    for frac in (0, 0.5, 1):
        y = pad // 2 + (1 - frac) * (h - 2 * pad)
        parts.append(
            f'<text x="2" y="{y + 4:.0f}" font-size="10">{int(frac * 100)}%</text>'
            f'<line x1="{pad}" x2="{w - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
    for n, route in enumerate(routes):
        colour = colours[n % len(colours)]
        coords: list[tuple[float, float]] = []
        for p in (p for p in points if p.route == route):
            x = pad + (p.at - t0) / span * (w - 2 * pad) if t1 > t0 else w / 2
            y = pad // 2 + (1 - p.matched / p.compared) * (h - 2 * pad)
            coords.append((x, y))
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}"/>')
        for x, y in coords:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>')
        parts.append(
            f'<text x="{pad + 8 + 140 * n}" y="{h - 6}" font-size="11" fill="{colour}">'
            f"{html.escape(route)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: Report) -> str:
    e = html.escape
    rows = []
    for ep in report.endpoints:
        fields = "".join(
            f"<tr><td><code>{e(f.path)}</code></td><td>{e(f.kind)}</td><td>{f.raw}</td>"
            f"<td>{'-' if f.noise is None else f.noise}</td>"
            f"<td>{e(', '.join(_example(x) for x in f.examples))}</td></tr>"
            for f in ep.fields
        )
        table = (
            "<table><tr><th>field</th><th>kind</th><th>raw</th><th>noise</th>"
            f"<th>examples</th></tr>{fields}</table>"
            if ep.fields
            else "<p class=ok>No differing fields.</p>"
        )
        suppressed = (
            f"<p class=muted>Noise suppressed: {e(', '.join(ep.suppressed))}</p>"
            if ep.suppressed
            else ""
        )
        rows.append(
            f"<section><h2>{e(ep.route)} &middot; {e(ep.method)} <code>{e(ep.endpoint)}</code>"
            f" &rarr; {e(ep.shadow_backend or '-')}</h2>"
            f"<p>compared <b>{ep.compared}</b> &middot; matched <b>{ep.matched}</b> "
            f"({_pct(ep.matched, ep.compared)}) &middot; differing <b>{ep.differing}</b> "
            f"&middot; errors {ep.errors} &middot; shed {ep.shed} &middot; skipped {ep.skipped}"
            f"</p><p>latency ms: primary p50 {_ms(ep.primary_ms.p50)} p99 "
            f"{_ms(ep.primary_ms.p99)} &middot; shadow p50 {_ms(ep.shadow_ms.p50)} p99 "
            f"{_ms(ep.shadow_ms.p99)}</p>{table}{suppressed}</section>"
        )
    body = "".join(rows) or "<p>No shadow results stored yet.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strangler shadow report</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:4px 6px;
text-align:left;vertical-align:top}}code{{font-size:13px}}.ok{{color:#2a7}}.muted{{color:#888}}
section{{margin:1.5em 0}}h2{{font-size:16px}}
</style></head><body>
<h1>Shadow report</h1>
<p>{e(_when(report.since))} .. {e(_when(report.until))}</p>
<h2>Match rate over time</h2>
{_chart(report.timeline)}
{body}
</body></html>
"""


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return to_json(report)
    if fmt == "html":
        return to_html(report)
    return to_text(report)
