"""Dead letters: parsing, listing and replaying to the original topic."""

from __future__ import annotations

import json

from strangler_events.dlq import dead_letters, parse, replay
from strangler_events.history import records
from tests.strangler_events.support import publish, topic


def letter(event_id: str, original_topic: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": "Thing",
            "consumer": "g",
            "error": "boom",
            "attempts": 4,
            "failed_at": 1.0,
            "original": {
                "topic": original_topic,
                "partition": 0,
                "offset": 3,
                "key": "42",
                "value": json.dumps({"id": event_id}),
                "headers": [["id", event_id]],
            },
        }
    ).encode()


def test_parse_refuses_what_is_not_a_dead_letter() -> None:
    assert parse(0, b"{}") is None
    assert parse(0, b"nope") is None
    parsed = parse(5, letter("e1", "t"))
    assert parsed is not None and parsed.offset == 5 and parsed.attempts == 4


async def test_list_and_replay_with_key_and_headers(kafka_bootstrap: str) -> None:
    dlq, original = topic(), topic()
    await publish(kafka_bootstrap, dlq, [letter("e1", original), letter("e2", original), b"junk"])
    letters = await dead_letters(kafka_bootstrap, dlq)
    assert [x.event_id for x in letters] == ["e1", "e2"]
    assert await replay(kafka_bootstrap, letters[1:]) == 1
    [(_, _, key, value)] = [r async for r in records(kafka_bootstrap, original)]
    assert key == b"42" and json.loads(value or b"") == {"id": "e2"}
