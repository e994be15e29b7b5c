"""Kafka through aiokafka (the only gateway module that imports it): the relay's event sink.

Records: topic from the ``kafka.topic`` template (``{aggregate}``, ``{type}``),
key = aggregate id (so one aggregate stays in one partition, in order), value =
a JSON envelope, headers = id, type, aggregate type, schema version and
traceparent.  ``acks=all``; aiokafka keeps one produce request per broker in
flight and mutes a partition while its batch is out, so its retries keep order.

Errors::

    PublishError            retriable = False: the record itself is refused (too large, ...)
     └── BrokerUnavailable  retriable = True: try again later
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors

from gateway.capture import Event

DEFAULT_MAX_RECORD = 1_048_576


class PublishError(Exception):
    retriable = False


class BrokerUnavailable(PublishError):
    retriable = True


def topic_for(template: str, event: Event) -> str:
    return template.format(aggregate=event.aggregatetype, type=event.type)


def envelope(event: Event) -> bytes:
    """The record value: what consumers (see :mod:`events`) decode."""
    return json.dumps(
        {
            "id": event.id,
            "type": event.type,
            "aggregatetype": event.aggregatetype,
            "aggregateid": event.aggregateid,
            "schema_version": event.headers.get("schema_version", 1),
            "occurred_at": event.occurred_at,
            "payload": event.payload,
            "metadata": event.headers,
        },
        separators=(",", ":"),
    ).encode()


def record_headers(event: Event) -> list[tuple[str, bytes]]:
    headers = [
        ("id", event.id.encode()),
        ("type", event.type.encode()),
        ("aggregatetype", event.aggregatetype.encode()),
        ("schema_version", str(event.headers.get("schema_version", 1)).encode()),
    ]
    trace = event.headers.get("traceparent")
    if trace:
        headers.append(("traceparent", str(trace).encode()))
    return headers


def _translate(exc: BaseException) -> PublishError:
    if isinstance(exc, kafka_errors.MessageSizeTooLargeError | kafka_errors.InvalidTopicError):
        return PublishError(str(exc) or type(exc).__name__)
    if isinstance(exc, kafka_errors.KafkaError) and not getattr(exc, "retriable", True):
        if not isinstance(exc, kafka_errors.KafkaTimeoutError | kafka_errors.KafkaConnectionError):
            return PublishError(f"{type(exc).__name__}: {exc}")
    return BrokerUnavailable(f"{type(exc).__name__}: {exc}")


class KafkaSink:
    """Publishes batches of events and says, per event, whether the broker took it."""

    def __init__(
        self,
        bootstrap: str,
        topic_template: str = "events.{aggregate}",
        idempotence: bool = False,
        max_record_bytes: int = DEFAULT_MAX_RECORD,
        request_timeout: float = 10.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic_template = topic_template
        self.max_record_bytes = max_record_bytes
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "acks": "all",
            "enable_idempotence": idempotence,
            "linger_ms": 2,
            "max_batch_size": 256 * 1024,
            "max_request_size": max_record_bytes + 4096,
            "request_timeout_ms": int(request_timeout * 1000),
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(**self._options)
            try:
                await producer.start()
            except Exception as exc:
                await producer.stop()
                raise _translate(exc) from exc
            self._producer = producer

    async def publish(self, events: Sequence[Event]) -> list[PublishError | None]:
        """Send all, wait for all acknowledgements; one result per event, in order."""
        await self.start()
        producer = self._producer
        assert producer is not None
        results: list[PublishError | None] = [None] * len(events)
        pending: list[tuple[int, Any]] = []
        for i, event in enumerate(events):
            value = envelope(event)
            if len(value) > self.max_record_bytes:
                results[i] = PublishError(
                    f"record of {len(value)} bytes exceeds the {self.max_record_bytes}-byte limit"
                )
                continue
            try:
                future = await producer.send(
                    topic_for(self.topic_template, event),
                    value,
                    key=event.aggregateid.encode(),
                    headers=record_headers(event),
                )
            except Exception as exc:  # noqa: BLE001 - translated per record
                results[i] = _translate(exc)
                continue
            pending.append((i, future))
        for i, future in pending:
            try:
                await future
            except Exception as exc:  # noqa: BLE001
                results[i] = _translate(exc)
        if any(isinstance(r, BrokerUnavailable) for r in results):
            await self.reset()
        return results

    async def reset(self) -> None:
        """Drop the producer so that the next batch starts a fresh one."""
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass

    async def stop(self) -> None:
        await self.reset()
