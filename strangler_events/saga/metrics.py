"""The saga's Prometheus metrics, in a registry of their own unless one is given
(expose it with ``prometheus_client.generate_latest(metrics.registry)``), as
:class:`~strangler_events.consumer.ConsumerMetrics` does.

Counters of instances started, completed, compensated and parked, timeouts, late
replies, unmatched events and version conflicts; the duration of each step (command
sent to completing reply); and the instances in flight per state, refreshed from the
store by the runner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from strangler_events.saga.instance import STATES, Fact

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OUTCOMES = ("started", "completed", "compensated", "parked")


class SagaMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.outcomes = {
            kind: Counter(
                f"strangler_saga_{kind}_total", f"Instances {kind}.", ("saga",), registry=r
            )
            for kind in OUTCOMES
        }
        self.timeouts = Counter(
            "strangler_saga_timeouts_total", "Deadlines that fired.", ("saga", "step"), registry=r
        )
        self.late = Counter(
            "strangler_saga_late_replies_total",
            "Successes after their step's deadline (compensated too).",
            ("saga", "step"),
            registry=r,
        )
        self.unmatched = Counter(
            "strangler_saga_unmatched_total",
            "Events for no instance, or that the instance no longer waits for.",
            ("saga", "reason"),
            registry=r,
        )
        self.conflicts = Counter(
            "strangler_saga_conflicts_total",
            "Transitions decided again after another one won the instance.",
            ("saga",),
            registry=r,
        )
        self.step_seconds = Histogram(
            "strangler_saga_step_seconds",
            "From a step's command to its completing reply.",
            ("saga", "step"),
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "strangler_saga_instances", "Instances per state.", ("saga", "state"), registry=r
        )

    def prepare(self, saga: str) -> None:
        """Export the saga's series at zero, so increase() sees the first one."""
        for counter in self.outcomes.values():
            counter.labels(saga)
        self.conflicts.labels(saga)
        for state in STATES:
            self.in_flight.labels(saga, state)

    def count(self, saga: str, facts: Iterable[Fact]) -> None:
        for fact in facts:
            if fact.kind in self.outcomes:
                self.outcomes[fact.kind].labels(saga).inc()
            elif fact.kind == "step" and fact.step is not None and fact.seconds is not None:
                self.step_seconds.labels(saga, fact.step).observe(fact.seconds)
            elif fact.kind == "timeout" and fact.step is not None:
                self.timeouts.labels(saga, fact.step).inc()
            elif fact.kind == "late" and fact.step is not None:
                self.late.labels(saga, fact.step).inc()

    def states(self, saga: str, counts: Mapping[tuple[str, str], int]) -> None:
        for state in STATES:
            self.in_flight.labels(saga, state).set(counts.get((saga, state), 0))
