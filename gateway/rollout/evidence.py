"""Evidence for one route from two metrics snapshots and the window's shadow tally (pure).

The driver keeps the merged worker counters as they were when a step's window opened;
the evidence is the difference to now: requests and 5xx per backend from
``strangler_requests_total`` and p99 per backend from the
``strangler_request_duration_seconds`` buckets (interpolated within a bucket, as
Prometheus' ``histogram_quantile`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.rollout.gates import Evidence


@dataclass(frozen=True, slots=True)
class Counts:
    """One route's counters at one moment."""

    requests: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    buckets: tuple[float, ...] = ()
    latency: dict[str, list[float]] = field(default_factory=dict)  # per backend bucket row


@dataclass(frozen=True, slots=True)
class ShadowTally:
    compared: int = 0
    matched: int = 0
    endpoint: str = ""
    top_field: str = ""


def counts(snapshot: Mapping[str, Any], route: str) -> Counts:
    """``route``'s counters in a merged metrics snapshot."""
    out = Counts()
    for (name, backend, status), value in _values(snapshot, "strangler_requests_total"):
        if name == route:
            out.requests[backend] = out.requests.get(backend, 0) + value
            if status == "5xx":
                out.errors[backend] = out.errors.get(backend, 0) + value
    histogram = snapshot.get("strangler_request_duration_seconds")
    buckets = tuple(histogram["buckets"]) if histogram else ()
    for (name, backend), row in _values(snapshot, "strangler_request_duration_seconds"):
        if name == route:
            out.latency[backend] = list(row)
    return Counts(out.requests, out.errors, buckets, out.latency)


def _values(snapshot: Mapping[str, Any], name: str) -> list[tuple[tuple[str, ...], Any]]:
    metric = snapshot.get(name)
    return [(tuple(labels), value) for labels, value in metric["values"]] if metric else []


def quantile(buckets: tuple[float, ...], row: list[float], q: float) -> float | None:
    """The ``q`` quantile of a bucket row ([count per bucket..., count above, sum])."""
    counted = row[:-1]
    total = sum(counted)
    if total <= 0:
        return None
    rank, running, lower = q * total, 0.0, 0.0
    for bound, count in zip(buckets, counted, strict=False):
        if count > 0 and running + count >= rank:
            return lower + (bound - lower) * (rank - running) / count
        running += count
        lower = bound
    return buckets[-1] if buckets else None


def between(before: Counts, after: Counts, shadow: ShadowTally) -> Evidence:
    """What happened from ``before`` to ``after``, with the window's shadow tally."""
    requests = {b: int(v - before.requests.get(b, 0)) for b, v in after.requests.items()}
    errors = {b: int(v - before.errors.get(b, 0)) for b, v in after.errors.items()}
    p99: dict[str, float] = {}
    for backend, row in after.latency.items():
        old = before.latency.get(backend, [0.0] * len(row))
        value = quantile(after.buckets, [a - b for a, b in zip(row, old, strict=True)], 0.99)
        if value is not None:
            p99[backend] = round(value, 6)
    return Evidence(
        {b: n for b, n in requests.items() if n},
        {b: n for b, n in errors.items() if n},
        p99,
        shadow.compared,
        shadow.matched,
        shadow.endpoint,
        shadow.top_field,
    )
