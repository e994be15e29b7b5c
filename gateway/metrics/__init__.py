"""The gateway's metrics: plain counters on the hot path, merged across worker processes
and exposed as Prometheus text (:mod:`gateway.metrics.registry`)."""

from gateway.metrics.registry import (
    Counter,
    GatewayMetrics,
    Gauge,
    Histogram,
    Registry,
    merge,
    read_snapshots,
    render,
)

__all__ = [
    "Counter",
    "GatewayMetrics",
    "Gauge",
    "Histogram",
    "Registry",
    "merge",
    "read_snapshots",
    "render",
]
