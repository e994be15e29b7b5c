"""The shadow report's evidence (pure): stored results in, per-endpoint numbers out.

Per route and endpoint: samples compared, matched, differing, errors, shed and
skipped; per field path: the raw count (primary vs shadow), the noise count
(primary vs secondary, when noise cancellation is on), the kind and up to five
example request ids; latency of the primary and the shadow backend (p50/p99).
A comparison *matches* when none of its differing fields is significant
(:mod:`shadow.noise`).  A write endpoint (its writes mirrored as dry runs) also says
whether the writes behave the same (``write_parity``).  :mod:`shadow.report.render`
turns a :class:`Report` into text, JSON or one self-contained HTML page.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.config.spec import SAFE_METHODS
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

    @property
    def write_parity(self) -> str | None:
        """For a write endpoint (mirrored as dry runs, ``shadow.allow_writes``): ``same``
        when every compared write matched and none failed, ``different`` otherwise,
        ``unknown`` before any was compared; None for a read endpoint."""
        if self.method in SAFE_METHODS:
            return None
        if not self.compared:
            return "unknown"
        return "same" if self.differing == 0 and self.errors == 0 else "different"


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
    _count_uncompared(out, rows)
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
        out.fields.append(_field_row(path, kinds[path], raw[path], noise, compared))
    primary = [r.primary_ms for r in compared if r.primary_ms is not None]
    shadow = [r.shadow_ms for r in compared if r.shadow_ms is not None]
    out.primary_ms = Latency(percentile(primary, 50), percentile(primary, 99))
    out.shadow_ms = Latency(percentile(shadow, 50), percentile(shadow, 99))
    return out, outcomes


def _count_uncompared(out: EndpointReport, rows: list[Result]) -> None:
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


def _field_row(
    path: str,
    kinds: Counter[str],
    raw: int,
    noise: Counter[str] | None,
    compared: list[Result],
) -> FieldRow:
    row = FieldRow(path, kinds.most_common(1)[0][0], raw, None)
    if noise is not None:
        row.noise = noise.get(path, 0)
    for r in compared:
        if len(row.examples) >= EXAMPLES:
            break
        hit = next((d for d in r.diffs if d.path == path), None)
        if hit is not None:
            row.examples.append(Example(r.request_id, hit.primary, hit.shadow))
    return row


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
