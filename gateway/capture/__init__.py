"""Change capture: legacy writes the gateway serves become domain events in a
transactional outbox, relayed to Kafka in order per aggregate.

Pure rules (:mod:`~gateway.capture.rules`), the crash-safe journal, the recorder on the
request path and the gate the proxy calls, the outbox (:mod:`gateway.capture.outbox`),
the relay and its Kafka sink, database triggers, and the ``strangler outbox`` commands.
The relay and the Kafka sink are imported from their modules (they load aiokafka).
"""

from gateway.capture.gate import CaptureGate
from gateway.capture.recorder import Recorder
from gateway.capture.rules import CompiledRule, Doubt, Event, capture, compile_rules, find_rule

__all__ = [
    "CaptureGate",
    "CompiledRule",
    "Doubt",
    "Event",
    "Recorder",
    "capture",
    "compile_rules",
    "find_rule",
]
