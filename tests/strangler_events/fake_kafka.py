"""A stand-in for the offset side of ``AIOKafkaConsumer``: partitions with fixed log start
and end offsets, fetch high watermarks, and errors for ``getmany`` to raise, so that
tests can show positions outside the log that the test broker cannot produce (it keeps
every record: no retention, no ``DeleteRecords``)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition


class FakeKafka:
    def __init__(self, logs: dict[TopicPartition, tuple[int, int]]) -> None:
        self.logs = logs  # partition -> (log start offset, log end offset)
        self.high: dict[TopicPartition, int] = {}  # the last fetch's high watermark
        self.errors: list[Exception] = []  # raised by getmany, one per call
        self.sought: dict[TopicPartition, int] = {}
        self.fetches = 0
        self._paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *tps: TopicPartition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high.get(tp)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.logs[tp][0] for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.logs[tp][1] for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought[tp] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> bool:
        self.sought.update({tp: self.logs[tp][0] for tp in tps})
        return True

    async def seek_to_end(self, *tps: TopicPartition) -> bool:
        self.sought.update({tp: self.logs[tp][1] for tp in tps})
        return True

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, Any]:
        self.fetches += 1
        if self.errors:
            raise self.errors.pop(0)
        await asyncio.sleep(0.01)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        return None

    async def stop(self) -> None:
        return None
