"""The dead-letter topic has one home, which the gateway's configuration default uses."""

from __future__ import annotations

from gateway.config import parse
from strangler_events.topics import DEAD_LETTER_TOPIC


def test_config_default_is_the_toolkit_topic() -> None:
    config = parse(
        "version: 1\n"
        "backends: {legacy: {url: 'http://a:1'}}\n"
        "routes: [{name: r, split: {legacy: 1}}]\n"
    )
    assert config.kafka["dead_letter_topic"] == DEAD_LETTER_TOPIC == "events.dead-letter"
