"""Sagas: durable process managers that orchestrate steps across services through
Kafka and compensate in reverse order when a step fails.

- :mod:`.definition`: the saga as plain Python (start event, key, steps, retries,
  compensations, the unmatched-event policy);
- :mod:`.instance` and :mod:`.machine`: the state and the pure transitions;
- :mod:`.store`: instances durable and versioned, each transition committed with its
  commands through the outbox (:mod:`.outbox`);
- :mod:`.runner`: consuming replies, firing durable deadlines; :mod:`.metrics`;
- :mod:`.participant`: idempotent command handlers that reply through the outbox;
- :mod:`.fixture`: given-when-then for sagas (also in :mod:`strangler_events.testing`);
- :mod:`.cli`: ``strangler saga list|show``.
"""

from __future__ import annotations

from strangler_events.saga.definition import (
    Command,
    Compensation,
    DefinitionError,
    Retry,
    SagaDefinition,
    Step,
)
from strangler_events.saga.instance import (
    COMPENSATED,
    COMPENSATING,
    COMPLETED,
    PARKED,
    RUNNING,
    STATES,
    TERMINAL,
    Decision,
    Instance,
    Outgoing,
)

__all__ = [
    "COMPENSATED",
    "COMPENSATING",
    "COMPLETED",
    "PARKED",
    "RUNNING",
    "STATES",
    "TERMINAL",
    "Command",
    "Compensation",
    "Decision",
    "DefinitionError",
    "Instance",
    "Outgoing",
    "Retry",
    "SagaDefinition",
    "Step",
]
