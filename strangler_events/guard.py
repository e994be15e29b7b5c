"""Finds a consumer's positions that lie outside the log (:mod:`strangler_events.mismatch`),
so that it never resumes past events it did not read.

Three places look:

* on assignment, before seeking to the stored positions: a stored position below the
  log start offset (``beginning_offsets``) is found at once and the partition is not
  sought; one above the listed end offset (``end_offsets``) is sought and confirmed by
  the first fetch, because some Kafka-protocol brokers under-report the listed end
  (the bundled tansu answers with the last record batch's base offset + 1);
* after each fetch, for a partition that returned nothing: a position above the high
  watermark of the fetch response (a broker that answers a fetch past the end with
  no records, as tansu does), confirmed against the listed offsets;
* when the fetch fails with ``OffsetOutOfRangeError`` (Kafka's answer to a fetch past
  either end; the consumer runs with ``auto_offset_reset="none"`` so that it is not
  silently reset to the earliest or latest offset).

A finding pauses the partition (nothing more is fetched from it), counts in
``strangler_consumer_position_mismatches_total`` and waits in :attr:`found` for the
consumer to act by its policy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from strangler_events.mismatch import PositionMismatch, check

log = logging.getLogger("strangler.consumer")


class PositionGuard:
    """One consumer's expected positions and the mismatches found; ``client`` is the
    running ``AIOKafkaConsumer`` (or anything with its offset methods)."""

    def __init__(self, group: str, counter: Counter) -> None:
        self.group = group
        self.counter = counter
        self.expected: dict[TopicPartition, int] = {}
        self.found: list[PositionMismatch] = []

    def consumed(self, tp: TopicPartition, next_offset: int) -> None:
        self.expected[tp] = next_offset

    def forget(self, tps: Iterable[TopicPartition] | None = None) -> None:
        """Stop expecting positions (all, or ``tps``'): they were revoked or sought."""
        if tps is None:
            self.expected.clear()
        for tp in tps or ():
            self.expected.pop(tp, None)

    async def assigned(self, client: Any, stored: dict[TopicPartition, int]) -> None:
        """Seek each partition to its stored position, unless that is below the log start."""
        if not stored:
            return
        tps = list(stored)
        try:
            starts = await client.beginning_offsets(tps)
            ends = await client.end_offsets(tps)
        except KafkaError as exc:  # the fetches will still find a position past either end
            log.warning("listing offsets on assignment failed: %s", exc)
            starts, ends = {}, {}
        for tp, position in stored.items():
            start, end = starts.get(tp), ends.get(tp)
            if start is not None and end is not None and position < start:
                self._found(client, tp, check(tp.topic, tp.partition, position, start, end))
                continue
            client.seek(tp, position)
            self.expected[tp] = position

    async def idle(self, client: Any, quiet: Iterable[TopicPartition]) -> None:
        """After a fetch: ``quiet`` partitions returned nothing; is one past the high
        watermark its fetch response reported?"""
        assigned, paused = client.assignment(), client.paused()
        suspects: dict[TopicPartition, int] = {}
        highs: dict[TopicPartition, int] = {}
        for tp in quiet:
            position = self.expected.get(tp)
            if position is None or tp not in assigned or tp in paused:
                continue
            high = client.highwater(tp)
            if high is not None and position > high:
                suspects[tp], highs[tp] = position, high
        if suspects:
            await self.confirm(client, suspects, highs)

    async def confirm(
        self,
        client: Any,
        positions: dict[TopicPartition, int],
        highs: dict[TopicPartition, int] | None = None,
    ) -> None:
        """Look the partitions' start and end up; record those ``positions`` outside them.
        The end is the larger of the listed end and the fetch's high watermark ``highs``
        when given (a listed end can under-report); after ``OffsetOutOfRangeError`` the
        listed offsets alone count (the last high watermark may predate the new log)."""
        tps = list(positions)
        try:
            starts = await client.beginning_offsets(tps)
            ends = await client.end_offsets(tps)
        except KafkaError as exc:
            log.warning("listing offsets to check positions failed, will look again: %s", exc)
            return
        for tp, position in positions.items():
            end = max(ends[tp], (highs or {}).get(tp, 0))
            mismatch = check(tp.topic, tp.partition, position, starts[tp], end)
            if mismatch is None:
                log.info(
                    "%s[%d] position %d is within [%d, %d] after all",
                    *tp,
                    position,
                    starts[tp],
                    end,
                )
            self._found(client, tp, mismatch)

    def _found(self, client: Any, tp: TopicPartition, mismatch: PositionMismatch | None) -> None:
        if mismatch is None:
            return
        if tp in client.assignment():
            client.pause(tp)
        self.expected.pop(tp, None)
        self.found.append(mismatch)
        self.counter.labels(self.group, tp.topic, str(tp.partition), mismatch.kind).inc()
        log.error("consumer %s: %s", self.group, mismatch)
