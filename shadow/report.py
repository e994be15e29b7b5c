"""The shadow report (pure): stored results in, per-endpoint evidence out, as text,
JSON or one self-contained HTML page.

Per route and endpoint: samples compared, matched, differing, errors, shed and
skipped; per field path: the raw count (primary vs shadow), the noise count
(primary vs secondary, when noise cancellation is on), the kind and up to five
example request ids; latency of the primary and the shadow backend (p50/p99).
A comparison *matches* when none of its differing fields is significant
(:mod:`shadow.noise`).
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from shadow.noise import significant
from shadow.store import Result

EXAMPLES = 5
TIMELINE_BUCKETS = 40


@dataclass(frozen=True, slots=True)
class Thresholds:
    relative: float = 0.2
    absolute: float = 0.0003


@dataclass
class Example:
    request_id: str
    primary: str = ""
    shadow: str = ""


@dataclass
class FieldRow:
    path: str
    kind: str
    raw: int
    noise: int | None
    examples: list[Example] = field(default_factory=list)


@dataclass
class Latency:
    p50: float | None
    p99: float | None


@dataclass
class EndpointReport:
    route: str
    method: str
    endpoint: str
    shadow_backend: str
    compared: int = 0
    matched: int = 0
    differing: int = 0
    errors: int = 0
    shed: int = 0
    skipped: int = 0
    noise_cancellation: bool = False
    fields: list[FieldRow] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)  # fields found to be noise
    primary_ms: Latency = field(default_factory=lambda: Latency(None, None))
    shadow_ms: Latency = field(default_factory=lambda: Latency(None, None))
    skip_reasons: dict[str, int] = field(default_factory=dict)
    error_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def match_rate(self) -> float | None:
        return self.matched / self.compared if self.compared else None


@dataclass
class Point:
    at: float
    route: str
    compared: int
    matched: int


@dataclass
class Report:
    since: float | None
    until: float | None
    endpoints: list[EndpointReport]
    timeline: list[Point]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def build(
    results: Iterable[Result],
    thresholds: Mapping[str, Thresholds] | None = None,
    buckets: int = TIMELINE_BUCKETS,
) -> Report:
    """The report over ``results``; ``thresholds`` per route name (defaults otherwise)."""
    thresholds = thresholds or {}
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.route, r.method, r.endpoint), []).append(r)
    endpoints = []
    matched_at: list[tuple[float, str, bool]] = []
    for (route, method, endpoint), rows in sorted(groups.items()):
        report, outcomes = _endpoint(route, method, endpoint, rows, thresholds.get(route))
        endpoints.append(report)
        matched_at += outcomes
    first = min((at for at, _, _ in matched_at), default=0.0)
    last = max((at for at, _, _ in matched_at), default=0.0)
    all_times = [r.at for rows in groups.values() for r in rows]
    return Report(
        since=min(all_times) if all_times else None,
        until=max(all_times) if all_times else None,
        endpoints=endpoints,
        timeline=_timeline(matched_at, first, last, buckets),
    )


def _endpoint(
    route: str,
    method: str,
    endpoint: str,
    rows: list[Result],
    limits: Thresholds | None,
) -> tuple[EndpointReport, list[tuple[float, str, bool]]]:
    limits = limits or Thresholds()
    compared = [r for r in rows if r.outcome == "compared"]
    out = EndpointReport(
        route,
        method,
        endpoint,
        next((r.shadow_backend for r in rows if r.shadow_backend), ""),
    )
    for r in rows:
        if r.outcome == "shed":
            out.shed += r.count
        elif r.outcome == "skipped":
            out.skipped += r.count
            out.skip_reasons[r.reason] = out.skip_reasons.get(r.reason, 0) + r.count
        elif r.outcome == "error":
            out.errors += r.count
            reason = r.reason.split(":", 1)[0]
            out.error_reasons[reason] = out.error_reasons.get(reason, 0) + r.count
    raw: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    for r in compared:
        for path in {d.path for d in r.diffs}:
            raw[path] += 1
        for d in r.diffs:
            kinds.setdefault(d.path, Counter())[d.kind] += 1
    with_noise = [r for r in compared if r.noise is not None]
    noise: Counter[str] | None = None
    if with_noise:
        noise = Counter(path for r in with_noise for path in r.noise or ())
        out.noise_cancellation = True
    real = significant(raw, noise, len(compared), limits.relative, limits.absolute)
    out.suppressed = sorted(set(raw) - real)
    outcomes = []
    for r in compared:
        differs = any(d.path in real for d in r.diffs)
        outcomes.append((r.at, route, not differs))
        out.compared += 1
        if differs:
            out.differing += 1
        else:
            out.matched += 1
    for path in sorted(real, key=lambda p: (-raw[p], p)):
        row = FieldRow(path, kinds[path].most_common(1)[0][0], raw[path], None)
        if noise is not None:
            row.noise = noise.get(path, 0)
        for r in compared:
            if len(row.examples) >= EXAMPLES:
                break
            hit = next((d for d in r.diffs if d.path == path), None)
            if hit is not None:
                row.examples.append(Example(r.request_id, hit.primary, hit.shadow))
        out.fields.append(row)
    primary = [r.primary_ms for r in compared if r.primary_ms is not None]
    shadow = [r.shadow_ms for r in compared if r.shadow_ms is not None]
    out.primary_ms = Latency(percentile(primary, 50), percentile(primary, 99))
    out.shadow_ms = Latency(percentile(shadow, 50), percentile(shadow, 99))
    return out, outcomes


def _timeline(
    outcomes: list[tuple[float, str, bool]], start: float, end: float, buckets: int
) -> list[Point]:
    if not outcomes:
        return []
    width = max((end - start) / buckets, 1e-9)
    points: dict[tuple[int, str], Point] = {}
    for at, route, matched in outcomes:
        i = min(int((at - start) / width), buckets - 1)
        point = points.setdefault((i, route), Point(start + i * width, route, 0, 0))
        point.compared += 1
        point.matched += matched
    return [points[k] for k in sorted(points)]


# -- rendering ---------------------------------------------------------------------------


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
