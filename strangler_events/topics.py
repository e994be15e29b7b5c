"""Topic names the toolkit and the gateway agree on, written once.

Kept in a module of its own (no imports) so that the gateway's configuration can name
the default without loading the consumer and its Kafka client.
"""

from __future__ import annotations

#: where consumers send what they cannot handle (``kafka.dead_letter_topic`` defaults to it)
DEAD_LETTER_TOPIC = "events.dead-letter"

__all__ = ["DEAD_LETTER_TOPIC"]
