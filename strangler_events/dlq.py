"""The dead-letter topic: list what is there, and replay events to their original topic
(with their original key, headers and id: the inbox makes a replay safe)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from strangler_events.history import records


@dataclass(frozen=True)
class DeadLetter:
    offset: int  # in the dead-letter topic
    event_id: str
    event_type: str | None
    consumer: str
    error: str
    attempts: int
    failed_at: float
    original: dict[str, Any]


def parse(offset: int, value: bytes | None) -> DeadLetter | None:
    try:
        data = json.loads(value or b"")
        return DeadLetter(
            offset,
            str(data["event_id"]),
            data.get("event_type"),
            str(data.get("consumer", "")),
            str(data.get("error", "")),
            int(data.get("attempts", 0)),
            float(data.get("failed_at", 0.0)),
            dict(data["original"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


async def dead_letters(bootstrap: str, topic: str) -> list[DeadLetter]:
    out = []
    async for _, offset, _, value in records(bootstrap, topic):
        letter = parse(offset, value)
        if letter is not None:
            out.append(letter)
    return out


async def replay(bootstrap: str, letters: Iterable[DeadLetter]) -> int:
    """Publish each letter's original record again; returns how many (acks=all)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    count = 0
    try:
        for letter in letters:
            original = letter.original
            value = original.get("value")
            key = original.get("key")
            headers = [(str(k), str(v).encode()) for k, v in original.get("headers") or []]
            await producer.send_and_wait(
                original["topic"],
                value.encode() if value is not None else None,
                key=key.encode() if key is not None else None,
                headers=headers or None,
            )
            count += 1
    finally:
        await producer.stop()
    return count
