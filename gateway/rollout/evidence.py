"""Evidence for one route from counters taken when a window opened and now, with the
window's shadow tally (pure: the counters come in, the store and clock stay outside).

A route's :class:`Counts` are taken from one gateway replica's merged worker metrics:
requests and 5xx per backend from ``strangler_requests_total`` and the per backend
``strangler_request_duration_seconds`` bucket rows, from which p99 is interpolated within a
bucket, as Prometheus' ``histogram_quantile`` does.

Every replica publishes its counters to the rollout store, keyed by an instance id, and
the driver keeps every replica's counters as they were when a step's window opened; the
evidence is the sum over replicas of each one's difference to now (:func:`across`), so
traffic served by any replica counts, not only the driving one's:

- a replica first seen after the window opened counts from zero (it started meanwhile);
- a replica that restarts comes back under a new instance id (a new replica); should one
  instance's counters still go down, it reset them, and what it counted since is its share
  (as Prometheus' ``increase`` treats a counter reset);
- a replica that disappeared keeps its last published counters: what it served in the
  window before it went still counts;
- no difference is ever negative (:func:`delta` clamps at zero).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "buckets": list(self.buckets),
            "latency": self.latency,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Counts:
        return cls(
            {str(b): float(v) for b, v in data.get("requests", {}).items()},
            {str(b): float(v) for b, v in data.get("errors", {}).items()},
            tuple(float(x) for x in data.get("buckets", ())),
            {str(b): [float(x) for x in row] for b, row in data.get("latency", {}).items()},
        )


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


def _went_down(before: Counts, after: Counts) -> bool:
    """Whether any of ``after``'s counters is below ``before``'s: the counters were reset."""
    for now, then in ((after.requests, before.requests), (after.errors, before.errors)):
        if any(now.get(b, 0) < v for b, v in then.items()):
            return True
    for backend, old in before.latency.items():
        row = after.latency.get(backend)
        if row is None or len(row) != len(old) or any(a < b for a, b in zip(row, old, strict=True)):
            return True
    return False


def delta(before: Counts, after: Counts) -> Counts:
    """What one replica counted from ``before`` to ``after``; when its counters went down
    (reset), everything in ``after``.  Never negative."""
    if _went_down(before, after):
        before = Counts()
    requests = {b: max(0.0, v - before.requests.get(b, 0)) for b, v in after.requests.items()}
    errors = {b: max(0.0, v - before.errors.get(b, 0)) for b, v in after.errors.items()}
    latency = {}
    for backend, row in after.latency.items():
        old = before.latency.get(backend, [0.0] * len(row))
        latency[backend] = [max(0.0, a - b) for a, b in zip(row, old, strict=True)]
    return Counts(requests, errors, after.buckets or before.buckets, latency)


def total(parts: Iterable[Counts]) -> Counts:
    """Several replicas' counters added up.  A bucket row whose layout differs from the
    first one seen (a replica on another configuration) is left out of the latency."""
    out = Counts()
    buckets: tuple[float, ...] = ()
    for part in parts:
        for b, v in part.requests.items():
            out.requests[b] = out.requests.get(b, 0) + v
        for b, v in part.errors.items():
            out.errors[b] = out.errors.get(b, 0) + v
        if not buckets:
            buckets = part.buckets
        if part.buckets != buckets:
            continue
        for b, row in part.latency.items():
            into = out.latency.setdefault(b, [0.0] * len(row))
            if len(into) == len(row):
                out.latency[b] = [x + y for x, y in zip(into, row, strict=True)]
    return Counts(out.requests, out.errors, buckets, out.latency)


def across(before: Mapping[str, Counts], after: Mapping[str, Counts]) -> Counts:
    """What every replica counted in a window, summed: ``before`` and ``after`` map a
    replica's instance id to its counters when the window opened and now.  A replica
    only in ``after`` counts from zero; one only in ``before`` added nothing since."""
    return total(delta(before.get(i, Counts()), counts) for i, counts in after.items())


def evidence(window: Counts, shadow: ShadowTally) -> Evidence:
    """The evidence of what was counted in a window (a :func:`delta` or :func:`across`),
    with the window's shadow tally."""
    p99: dict[str, float] = {}
    for backend, row in window.latency.items():
        value = quantile(window.buckets, row, 0.99)
        if value is not None:
            p99[backend] = round(value, 6)
    return Evidence(
        {b: int(n) for b, n in window.requests.items() if int(n)},
        {b: int(n) for b, n in window.errors.items() if int(n)},
        p99,
        shadow.compared,
        shadow.matched,
        shadow.endpoint,
        shadow.top_field,
    )


def between(before: Counts, after: Counts, shadow: ShadowTally) -> Evidence:
    """What happened from ``before`` to ``after`` (one replica), with the window's shadow
    tally."""
    return evidence(delta(before, after), shadow)
