"""The soak benchmark's pure accounting: which failures a dead backend explains, how far
each worker's memory drifted after warm-up, which acknowledged writes have no event, the
verdict and the printed report.  No I/O here: :mod:`bench.soak` gathers the numbers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEAD_BACKEND_STATUSES = frozenset({502, 503, 504})
DRIFT_LIMIT = 10.0  # percent
GRACE = 2.0  # seconds after the backend listens again that its failures are still explained


@dataclass(frozen=True, slots=True)
class Failure:
    """A request that did not get the answer its operation expects."""

    at: float  # monotonic time the answer (or the error) arrived
    op: str
    status: int | None  # None: no HTTP answer at all
    backend: str | None  # the ``backend`` field of a gateway-made JSON error
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": round(self.at, 3),
            "op": self.op,
            "status": self.status,
            "backend": self.backend,
            "detail": self.detail[:200],
        }


@dataclass(frozen=True, slots=True)
class Window:
    """A backend was down from ``start`` (killed) until ``end`` (listening again)."""

    backend: str
    start: float
    end: float


def explained(failure: Failure, windows: Iterable[Window]) -> bool:
    """A 502/503/504 naming a backend, during one of that backend's down windows."""
    if failure.status not in DEAD_BACKEND_STATUSES or failure.backend is None:
        return False
    return any(
        w.backend == failure.backend and w.start <= failure.at <= w.end + GRACE for w in windows
    )


WINDOW_S = 60.0  # RSS is judged by one-minute medians: single samples jump by a few MB


@dataclass(frozen=True, slots=True)
class Drift:
    warm_kib: int  # median of the first minute after warm-up
    end_kib: int  # median of the last minute
    max_pct: float  # largest |minute median / warm - 1| after warm-up, in percent
    max_sample_pct: float  # the same for single samples (noisier; shown for reference)


def _median(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def drift(samples: Sequence[tuple[float, Mapping[int, int]]], warm_at: float) -> dict[int, Drift]:
    """Per worker pid: the median RSS of each minute after ``warm_at``, compared with the
    first such minute (a worker that appears only after warm-up, being restarted, is
    measured from its own first minute); single-sample deviations are reported too."""
    windows: dict[int, dict[int, list[int]]] = {}
    for at, by_pid in samples:
        if at < warm_at:
            continue
        slot = int((at - warm_at) // WINDOW_S)
        for pid, kib in by_pid.items():
            windows.setdefault(pid, {}).setdefault(slot, []).append(kib)
    out: dict[int, Drift] = {}
    for pid, slots in windows.items():
        ordered = [slots[k] for k in sorted(slots)]
        base = _median(ordered[0])
        medians = [_median(w) for w in ordered]
        every = [kib for w in ordered for kib in w]
        out[pid] = Drift(
            base,
            medians[-1],
            max(abs(m / base - 1) * 100 for m in medians) if base else 0.0,
            max(abs(k / base - 1) * 100 for k in every) if base else 0.0,
        )
    return out


@dataclass(frozen=True, slots=True)
class Ledger:
    acknowledged: int
    events: int
    doubts: int
    lost: list[str]  # request ids of acknowledged writes with neither an event nor a doubt
    duplicated: int  # events beyond the first for one request id
    unacknowledged: int  # events for writes the client did not see succeed


def ledger(
    acknowledged: Iterable[str], event_ids: Sequence[str], doubt_ids: Sequence[str]
) -> Ledger:
    """Compare the writes the monolith acknowledged (2xx) with the outbox, by request id."""
    acked = set(acknowledged)
    counts = Counter(event_ids)
    doubted = set(doubt_ids)
    lost = sorted(r for r in acked if r not in counts and r not in doubted)
    return Ledger(
        acknowledged=len(acked),
        events=len(event_ids),
        doubts=len(doubt_ids),
        lost=lost,
        duplicated=sum(n - 1 for n in counts.values() if n > 1),
        unacknowledged=sum(n for r, n in counts.items() if r not in acked),
    )


def verdict(max_drift: float, unexplained: int, lost: int) -> list[str]:
    """Why the run failed; empty when it passed."""
    reasons = []
    if max_drift > DRIFT_LIMIT:
        reasons.append(f"worker RSS drifted {max_drift:.1f}% after warm-up (limit {DRIFT_LIMIT}%)")
    if unexplained:
        reasons.append(f"{unexplained} failed request(s) not explained by a dead backend")
    if lost:
        reasons.append(f"{lost} acknowledged write(s) have neither an event nor a doubt")
    return reasons


def render(report: Mapping[str, Any]) -> str:
    """The human summary of a report (the same numbers as its JSON)."""
    req, out, rss = report["requests"], report["outbox"], report["rss"]
    lines = [
        f"strangler soak: {report['minutes']} min, {report['workers']} workers, "
        f"target {report['rate']} req/s, {report['clients']} clients",
        "",
        "worker RSS (KiB, one-minute medians):   warm-up      end   max drift",
    ]
    for pid, w in sorted(rss["workers"].items()):
        lines.append(
            f"  pid {pid:>8}  {w['warm_kib']:>9,} {w['end_kib']:>9,}  {w['max_pct']:>6.1f}%"
            f"   (single samples {w.get('max_sample_pct', 0.0):.1f}%)"
        )
    lines += [
        f"  warm-up at {rss['warm_at_s']:.0f}s, {rss['samples']} samples; "
        f"max drift {rss['max_drift_pct']:.1f}% (limit {DRIFT_LIMIT:.0f}%)",
        "",
        f"requests: sent {req['sent']:,} ({req['achieved_rate']:.0f}/s), ok {req['ok']:,}, "
        f"failed {req['failed']:,} (explained by the dead backend {req['explained']:,}, "
        f"unexplained {req['unexplained']:,})",
        f"  by operation: {_pairs(req['by_op'])}",
        f"  failures by status: {_pairs(req['failed_by_status']) or 'none'}",
        f"reloads: {report['reloads']['ok']} ok, {report['reloads']['failed']} failed; "
        f"backend restarts: {report['restarts']}",
        f"writes acknowledged {out['acknowledged']:,}; events {out['events']:,}; "
        f"doubts {out['doubts']:,}; lost {out['lost']:,}; duplicated {out['duplicated']:,}; "
        f"events for unacknowledged writes {out['unacknowledged']:,}",
        "",
    ]
    reasons = report["reasons"]
    lines.append("PASS" if not reasons else "FAIL: " + "; ".join(reasons))
    return "\n".join(lines)


def _pairs(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
