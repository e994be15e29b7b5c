"""The position guard against a fake consumer: on assignment a stored position below the
log start is found before seeking, one past the listed end is sought and confirmed by
the fetch's high watermark; a fetch that comes back out of range is confirmed against
the listed offsets; every finding pauses its partition and is counted once."""

from __future__ import annotations

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from strangler_events.consumer import ConsumerMetrics
from strangler_events.guard import PositionGuard
from strangler_events.mismatch import BELOW_START, BEYOND_END
from tests.strangler_events.fake_kafka import FakeKafka

TP = TopicPartition("events.order", 2)
OTHER = TopicPartition("events.order", 3)


def guard() -> tuple[PositionGuard, CollectorRegistry]:
    metrics = ConsumerMetrics()
    return PositionGuard("g", metrics.position_mismatches), metrics.registry


def counted(registry: CollectorRegistry, tp: TopicPartition, kind: str) -> float:
    labels = {"consumer": "g", "topic": tp.topic, "partition": str(tp.partition), "kind": kind}
    name = "strangler_consumer_position_mismatches_total"
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_stored_position_below_the_log_start_is_found_before_seeking() -> None:
    g, registry = guard()
    kafka = FakeKafka({TP: (10, 20), OTHER: (0, 5)})
    await g.assigned(kafka, {TP: 4, OTHER: 5})
    [found] = g.found
    assert (found.kind, found.position, found.start, found.end) == (BELOW_START, 4, 10, 20)
    assert kafka.sought == {OTHER: 5}  # the mismatched partition is not sought ...
    assert kafka.paused() == {TP}  # ... and nothing more is fetched from it
    assert g.expected == {OTHER: 5}
    assert counted(registry, TP, BELOW_START) == 1


async def test_past_the_listed_end_is_sought_then_confirmed_by_the_high_watermark() -> None:
    g, registry = guard()
    kafka = FakeKafka({TP: (0, 2)})
    await g.assigned(kafka, {TP: 6})
    assert kafka.sought == {TP: 6} and g.found == []  # listed ends may under-report
    await g.idle(kafka, [TP])  # no fetch response yet: no high watermark, no verdict
    assert g.found == []
    kafka.high[TP] = 2
    await g.idle(kafka, [TP])
    [found] = g.found
    assert (found.kind, found.position, found.end) == (BEYOND_END, 6, 2)
    assert kafka.paused() == {TP} and counted(registry, TP, BEYOND_END) == 1
    await g.idle(kafka, [TP])  # paused and no longer expected: counted once
    assert len(g.found) == 1 and counted(registry, TP, BEYOND_END) == 1


async def test_a_high_watermark_below_the_position_but_a_larger_listed_end_is_no_mismatch() -> None:
    g, _ = guard()
    kafka = FakeKafka({TP: (0, 9)})
    g.consumed(TP, 7)
    kafka.high[TP] = 5  # a stale high watermark; the log really ends at 9
    await g.idle(kafka, [TP])
    assert g.found == [] and kafka.paused() == set()


async def test_an_out_of_range_fetch_is_confirmed_against_the_listed_offsets() -> None:
    g, registry = guard()
    kafka = FakeKafka({TP: (10, 20), OTHER: (0, 5)})
    await g.confirm(kafka, {TP: 4, OTHER: 3})
    [found] = g.found
    assert (found.partition, found.kind, found.start) == (2, BELOW_START, 10)
    assert kafka.paused() == {TP}
    assert counted(registry, TP, BELOW_START) == 1 and counted(registry, OTHER, BELOW_START) == 0


async def test_out_of_range_trusts_the_listed_end_over_a_high_watermark_of_the_old_log() -> None:
    g, _ = guard()
    kafka = FakeKafka({TP: (0, 3)})  # the topic was recreated under a running consumer
    kafka.high[TP] = 100  # the last fetch response before that
    await g.confirm(kafka, {TP: 100})
    [found] = g.found
    assert (found.kind, found.position, found.end) == (BEYOND_END, 100, 3)


async def test_revoked_or_sought_partitions_are_no_longer_expected() -> None:
    g, _ = guard()
    g.consumed(TP, 3)
    g.consumed(OTHER, 4)
    g.forget([TP])
    assert g.expected == {OTHER: 4}
    g.forget()
    assert g.expected == {}
