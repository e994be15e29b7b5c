"""Per route and backend traffic figures for the dashboard, from merged metrics snapshots (pure).

A :class:`Window` keeps the samples the admin API took in the last few seconds; the figures
are the difference between the newest sample and the oldest one still in the window:
requests per second, the share of 5xx answers and p50/p99 latency (interpolated within a
bucket, as Prometheus' ``histogram_quantile`` does).  Without an earlier sample the
figures cover everything counted so far and the rate is unknown (``None``).  The clock is
passed in, so the module does no I/O.

It also shapes the other panels' data: per shadowed endpoint the match rate with its top
differing fields and example request ids (:func:`shadow_stats`, over the results the admin
API read for the last :data:`SHADOW_SPAN` seconds), and the outbox's backlog with the
relay's state from its heartbeat (:func:`outbox_stats`; ``relay`` is None when no relay
leads, and ``stale`` when its heartbeat stopped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.capture.outbox.port import RelayState, Status
from gateway.rollout.evidence import Counts, counts, quantile
from shadow.report.aggregate import build as shadow_report
from shadow.store.port import Result

SPAN = 5.0  # seconds of history the rates cover
MAX_SAMPLES = 256  # a bound however often the page is polled


@dataclass(frozen=True, slots=True)
class Sample:
    """Every route's counters at one moment."""

    at: float
    routes: Mapping[str, Counts]


def sample(snapshot: Mapping[str, Any], routes: Iterable[str], at: float) -> Sample:
    """The counters of ``routes`` in a merged metrics snapshot, taken at ``at``."""
    return Sample(at, {name: counts(snapshot, name) for name in routes})


class Window:
    """The samples of the last :data:`SPAN` seconds; the oldest is the baseline."""

    def __init__(self, span: float = SPAN) -> None:
        self.span = span
        self.samples: list[Sample] = []

    def add(self, current: Sample) -> Sample | None:
        """Keep ``current``; return the sample to measure it against (None: no earlier one)."""
        self.samples = [s for s in self.samples if s.at < current.at]
        self.samples.append(current)
        while len(self.samples) > 2 and self.samples[1].at <= current.at - self.span:
            self.samples.pop(0)
        del self.samples[: max(0, len(self.samples) - MAX_SAMPLES)]
        return self.samples[0] if len(self.samples) > 1 else None


def _delta(after: list[float], before: list[float] | None) -> list[float]:
    if before is None or len(before) != len(after):
        return list(after)
    return [a - b for a, b in zip(after, before, strict=True)]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def backend_stats(before: Sample | None, after: Sample) -> list[dict[str, Any]]:
    """One row per (route, backend) with traffic: totals, rps, 5xx % and p50/p99 (seconds)."""
    elapsed = after.at - before.at if before is not None else 0.0
    rows = []
    for route, now in after.routes.items():
        then = before.routes.get(route) if before is not None else None
        for backend in sorted(now.requests):
            total = now.requests[backend]
            requests = total - (then.requests.get(backend, 0) if then else 0)
            errors = now.errors.get(backend, 0) - (then.errors.get(backend, 0) if then else 0)
            row = now.latency.get(backend)
            latency = _delta(row, then.latency.get(backend) if then else None) if row else []
            rows.append(
                {
                    "route": route,
                    "backend": backend,
                    "requests": int(total),
                    "rps": round(requests / elapsed, 2) if elapsed > 0 else None,
                    "error_pct": round(100 * errors / requests, 2) if requests > 0 else None,
                    "p50": _round(quantile(now.buckets, latency, 0.5), 6) if latency else None,
                    "p99": _round(quantile(now.buckets, latency, 0.99), 6) if latency else None,
                }
            )
    return rows


SHADOW_SPAN = 300.0  # seconds of shadow results the dashboard summarises
TOP_FIELDS = 3  # differing fields shown per endpoint


def shadow_stats(results: Iterable[Result]) -> list[dict[str, Any]]:
    """One row per shadowed endpoint: match rate (%) and its top differing fields, each
    with how many comparisons it differed in and example request ids."""
    return [
        {
            "route": e.route,
            "method": e.method,
            "endpoint": e.endpoint,
            "shadow_backend": e.shadow_backend,
            "compared": e.compared,
            "matched": e.matched,
            "differing": e.differing,
            "errors": e.errors,
            "match_pct": _round(None if e.match_rate is None else 100 * e.match_rate, 2),
            "fields": [
                {
                    "path": f.path,
                    "kind": f.kind,
                    "count": f.raw,
                    "examples": [x.request_id for x in f.examples if x.request_id],
                }
                for f in e.fields[:TOP_FIELDS]
            ],
        }
        for e in shadow_report(results).endpoints
    ]


def outbox_stats(status: Status, relay: RelayState | None = None) -> dict[str, Any]:
    """The outbox's backlog: pending rows, the oldest one's age (seconds), published,
    doubts and blocked rows; and the relay's state (None: no relay leads)."""
    return {
        "relay": relay.to_json() if relay is not None else None,
        "pending": status.pending,
        "oldest_pending_age": _round(status.oldest_pending_age, 3),
        "published": status.published,
        "doubts": status.doubts,
        "blocked": status.blocked,
    }
