"""Prometheus metrics that cost a dict update on the hot path and stay correct across workers.

Each process keeps plain counters.  With several workers, each one writes a
snapshot to ``<dir>/metrics-<pid>.json`` about once a second (and on exit); the
admin process merges every snapshot with its own registry when scraped.
Counters and histograms of exited workers keep counting (they are monotonic);
gauges count only live processes.  Output is the Prometheus text format 0.0.4.

    >>> registry = Registry()
    >>> hits = registry.counter("hits_total", "Hits.", ("route",))
    >>> hits.inc(("users",))
    >>> "hits_total{route=\\"users\\"} 1" in render(registry.snapshot())
    True
"""

from __future__ import annotations

import bisect
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Labels = tuple[str, ...]
DEFAULT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Counter:
    kind = "counter"

    def __init__(self, name: str, help: str, labels: Labels) -> None:
        self.name, self.help, self.labels = name, help, labels
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels = (), amount: float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0) + amount

    def get(self, labels: Labels = ()) -> float:
        return self.values.get(labels, 0)

    def dump(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "help": self.help,
            "labels": list(self.labels),
            "values": [[list(k), v] for k, v in self.values.items()],
        }


class Gauge(Counter):
    kind = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def dec(self, labels: Labels = (), amount: float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0) - amount


class Histogram:
    kind = "histogram"

    def __init__(
        self, name: str, help: str, labels: Labels, buckets: tuple[float, ...] = DEFAULT_BUCKETS
    ) -> None:
        self.name, self.help, self.labels, self.buckets = name, help, labels, buckets
        # per label set: [count per bucket ..., count above the last bucket, sum]
        self.values: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.buckets) + 2)
        row[bisect.bisect_left(self.buckets, value)] += 1
        row[-1] += value

    def count(self, labels: Labels) -> int:
        row = self.values.get(labels)
        return int(sum(row[:-1])) if row else 0

    def dump(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "help": self.help,
            "labels": list(self.labels),
            "buckets": list(self.buckets),
            "values": [[list(k), v] for k, v in self.values.items()],
        }


Metric = Counter | Gauge | Histogram


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}

    def _add(self, metric: Metric) -> Any:
        existing = self.metrics.get(metric.name)
        if existing is not None:
            return existing
        self.metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labels: Labels = ()) -> Counter:
        result: Counter = self._add(Counter(name, help, labels))
        return result

    def gauge(self, name: str, help: str, labels: Labels = ()) -> Gauge:
        result: Gauge = self._add(Gauge(name, help, labels))
        return result

    def histogram(
        self, name: str, help: str, labels: Labels, buckets: tuple[float, ...] = DEFAULT_BUCKETS
    ) -> Histogram:
        result: Histogram = self._add(Histogram(name, help, labels, buckets))
        return result

    def snapshot(self) -> dict[str, Any]:
        return {name: m.dump() for name, m in self.metrics.items()}

    def write(self, directory: Path) -> None:
        """Publish this process's snapshot for the admin process (atomic replace)."""
        target = directory / f"metrics-{os.getpid()}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, target)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_snapshots(directory: Path) -> list[dict[str, Any]]:
    """Every worker snapshot in ``directory``; gauges are removed for exited workers."""
    out = []
    for path in sorted(directory.glob("metrics-*.json")):
        try:
            snap: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now; the next scrape sees it
        pid = int(path.stem.split("-", 1)[1])
        if not _alive(pid):
            snap = {k: v for k, v in snap.items() if v["kind"] != "gauge"}
        out.append(snap)
    return out


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for snap in snapshots:
        for name, metric in snap.items():
            into = merged.setdefault(name, {**metric, "values": {}})
            for labels, value in metric["values"]:
                key = tuple(labels)
                if isinstance(value, list):
                    row = into["values"].setdefault(key, [0.0] * len(value))
                    for i, v in enumerate(value):
                        row[i] += v
                else:
                    into["values"][key] = into["values"].get(key, 0) + value
    for metric in merged.values():
        metric["values"] = [[list(k), v] for k, v in metric["values"].items()]
    return merged


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(value: str) -> str:
    return _escape_help(value).replace('"', '\\"')


def _labels(names: list[str], values: list[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(snapshot: dict[str, Any]) -> str:
    """The Prometheus text exposition of a (merged) snapshot."""
    lines: list[str] = []
    for name, metric in sorted(snapshot.items()):
        lines.append(f"# HELP {name} {_escape_help(metric['help'])}")
        lines.append(f"# TYPE {name} {metric['kind']}")
        names = metric["labels"]
        for labels, value in sorted(metric["values"], key=lambda lv: lv[0]):
            if metric["kind"] == "histogram":
                running = 0.0
                for bound, count in zip([*metric["buckets"], math.inf], value[:-1], strict=True):
                    running += count
                    le = f'le="{_num(bound)}"'
                    lines.append(f"{name}_bucket{_labels(names, labels, le)} {_num(running)}")
                lines.append(f"{name}_sum{_labels(names, labels)} {_num(value[-1])}")
                lines.append(f"{name}_count{_labels(names, labels)} {_num(running)}")
            else:
                lines.append(f"{name}{_labels(names, labels)} {_num(value)}")
    return "\n".join(lines) + "\n"


class GatewayMetrics:
    """The gateway's own metrics, by name."""

    def __init__(self, registry: Registry | None = None) -> None:
        r = self.registry = registry or Registry()
        self.requests = r.counter(
            "strangler_requests_total",
            "Requests by route, backend and status class.",
            ("route", "backend", "status"),
        )
        self.latency = r.histogram(
            "strangler_request_duration_seconds",
            "Time to the response head, per route/backend.",
            ("route", "backend"),
        )
        self.upstream_errors = r.counter(
            "strangler_upstream_errors_total",
            "Failed upstream attempts by kind.",
            ("backend", "kind"),
        )
        self.retries = r.counter(
            "strangler_retries_total", "Upstream attempts repeated.", ("route", "backend")
        )
        self.fallbacks = r.counter(
            "strangler_fallbacks_total",
            "Requests re-sent to the fallback backend.",
            ("route", "from", "to"),
        )
        self.ejections = r.counter(
            "strangler_ejections_total", "Outlier ejections per backend.", ("backend",)
        )
        self.reloads = r.counter(
            "strangler_reloads_total", "Configuration reloads by result.", ("result",)
        )
        self.in_flight = r.gauge("strangler_in_flight_requests", "Requests being proxied.")
        self.refused = r.counter(
            "strangler_refused_total", "Requests refused before routing, by reason.", ("reason",)
        )
        self.override_ignored = r.counter(
            "strangler_override_ignored_total",
            "Override headers naming no backend of the route.",
            ("route",),
        )
