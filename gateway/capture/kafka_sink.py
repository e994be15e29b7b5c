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
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quoted  # json.dumps of a str, in C
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.partitioner import murmur2

from gateway.capture.rules import Event

DEFAULT_MAX_RECORD = 1_048_576
CACHED_KEYS = 65_536  # key hashes remembered (aggregates recur; the cache starts over when full)


class PublishError(Exception):
    retriable = False


class BrokerUnavailable(PublishError):
    retriable = True


def topic_for(template: str, event: Event) -> str:
    return template.format(aggregate=event.aggregatetype, type=event.type)


def envelope(event: Event) -> bytes:
    """The record value: what consumers (see :mod:`events`) decode."""
    if event.encoded is not None:
        return event.encoded
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


def envelope_from_text(event: Event, payload_json: str | None, headers_json: str) -> bytes:
    """:func:`envelope` for a row whose payload and headers are already JSON text (the
    PostgreSQL store's), spliced in rather than parsed and encoded again."""
    q = _quoted
    return (
        f'{{"id":{q(event.id)},"type":{q(event.type)},'
        f'"aggregatetype":{q(event.aggregatetype)},"aggregateid":{q(event.aggregateid)},'
        f'"schema_version":{int(event.headers.get("schema_version", 1))},'
        f'"occurred_at":{event.occurred_at!r},"payload":{payload_json or "null"},'
        f'"metadata":{headers_json}}}'
    ).encode()


def record_headers(event: Event) -> list[tuple[str, bytes]]:
    return [("id", event.id.encode()), *_kind_headers(event), *_trace_header(event)]


def _kind_headers(event: Event) -> tuple[tuple[str, bytes], ...]:
    return (
        ("type", event.type.encode()),
        ("aggregatetype", event.aggregatetype.encode()),
        ("schema_version", str(event.headers.get("schema_version", 1)).encode()),
    )


def _trace_header(event: Event) -> list[tuple[str, bytes]]:
    trace = event.headers.get("traceparent")
    return [("traceparent", str(trace).encode())] if trace else []


def partition_for(key: bytes, partitions: Sequence[int], hashes: dict[bytes, int]) -> int:
    """Where aiokafka's default partitioner puts ``key`` (murmur2, as the Java client),
    with the key's hash remembered in ``hashes``: the pure-Python murmur2 is the costliest
    step per record otherwise, and one aggregate's key comes again and again."""
    h = hashes.get(key)
    if h is None:
        if len(hashes) >= CACHED_KEYS:
            hashes.clear()
        h = hashes[key] = murmur2(key) & 0x7FFFFFFF
    return partitions[h % len(partitions)]


class _Records:
    """Per-batch lookups that repeat from record to record: topic names and the header
    triple (type, aggregate type, schema version) per kind of event."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.topics: dict[tuple[str, str], str] = {}
        self.kinds: dict[tuple[str, str, str], tuple[tuple[str, bytes], ...]] = {}

    def topic(self, event: Event) -> str:
        kind = (event.aggregatetype, event.type)
        topic = self.topics.get(kind)
        if topic is None:
            topic = self.topics[kind] = topic_for(self.template, event)
        return topic

    def headers(self, event: Event) -> list[tuple[str, bytes]]:
        kind = (event.type, event.aggregatetype, str(event.headers.get("schema_version", 1)))
        common = self.kinds.get(kind)
        if common is None:
            common = self.kinds[kind] = _kind_headers(event)
        if "traceparent" in event.headers:
            return [("id", event.id.encode()), *common, *_trace_header(event)]
        return [("id", event.id.encode()), *common]


def _translate(exc: BaseException) -> PublishError:
    if isinstance(exc, kafka_errors.MessageSizeTooLargeError | kafka_errors.InvalidTopicError):
        return PublishError(str(exc) or type(exc).__name__)
    if isinstance(exc, kafka_errors.KafkaError) and not getattr(exc, "retriable", True):
        if not isinstance(exc, kafka_errors.KafkaTimeoutError | kafka_errors.KafkaConnectionError):
            return PublishError(f"{type(exc).__name__}: {exc}")
    return BrokerUnavailable(f"{type(exc).__name__}: {exc}")


@dataclass(slots=True)
class _Batch:
    """One :meth:`KafkaSink.send` call's records: ``indices`` picks one partition's."""

    events: Sequence[Event]
    keys: list[bytes]
    values: list[bytes]
    indices: list[int]


@dataclass(slots=True)
class Sending:
    """A batch handed to the producer: per-event results so far, and acks to wait for."""

    results: list[PublishError | None]
    futures: list[tuple[int, Any]]


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
        self._hashes: dict[bytes, int] = {}
        self._records = _Records(topic_template)

    async def start(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(**self._options)
            try:
                await producer.start()
            except Exception as exc:
                await producer.stop()
                raise _translate(exc) from exc
            self._producer = producer

    async def send(self, events: Sequence[Event]) -> Sending:
        """Hand a batch over; its acknowledgements come later (:meth:`collect`).

        Records are grouped per topic partition and handed to aiokafka as whole record
        batches (``create_batch``/``send_batch``), in event order within each partition:
        far cheaper than a ``send()`` per record.  Partitions come from aiokafka's default
        partitioner, so a key lands where any aiokafka producer would put it."""
        await self.start()
        producer = self._producer
        assert producer is not None
        sending = Sending([None] * len(events), [])
        groups: dict[tuple[str, int], list[int]] = {}
        values: list[bytes] = []
        keys: list[bytes] = []
        partitions: dict[str, list[int]] = {}
        limit, hashes, records = self.max_record_bytes, self._hashes, self._records
        for i, event in enumerate(events):
            value = event.encoded if event.encoded is not None else envelope(event)
            key = event.aggregateid.encode()
            values.append(value)
            keys.append(key)
            if len(value) > limit:
                sending.results[i] = PublishError(
                    f"record of {len(value)} bytes exceeds the {limit}-byte limit"
                )
                continue
            topic = records.topic(event)
            known = partitions.get(topic)
            if known is None:
                try:
                    known = partitions[topic] = sorted(await producer.partitions_for(topic))
                except Exception as exc:  # noqa: BLE001 - translated per record
                    sending.results[i] = _translate(exc)
                    continue
            where = (topic, partition_for(key, known, hashes))
            group = groups.get(where)
            if group is None:
                groups[where] = [i]
            else:
                group.append(i)
        for where, indices in groups.items():
            await self._send_partition(
                producer, _Batch(events, keys, values, indices), where, sending
            )
        return sending

    async def _send_partition(
        self, producer: AIOKafkaProducer, batch: _Batch, where: tuple[str, int], sending: Sending
    ) -> None:
        """One partition's records as whole record batches, in event order (a batch always
        takes its first record, however large)."""
        headers = self._records.headers
        position = 0
        while position < len(batch.indices):
            builder, members = producer.create_batch(), []
            for i in batch.indices[position:]:
                added = builder.append(
                    key=batch.keys[i],
                    value=batch.values[i],
                    timestamp=None,
                    headers=headers(batch.events[i]),
                )
                if added is None:  # full: hand this one over, the rest go in the next
                    break
                members.append(i)
            position += len(members)
            try:
                future = await producer.send_batch(builder, where[0], partition=where[1])
            except Exception as exc:  # noqa: BLE001
                for m in members:
                    sending.results[m] = _translate(exc)
            else:
                sending.futures.extend((m, future) for m in members)

    async def collect(self, sending: Sending) -> list[PublishError | None]:
        """Wait for a batch's acknowledgements; one result per event, in order."""
        outcome: dict[int, PublishError | None] = {}
        for i, future in sending.futures:
            key = id(future)
            if key not in outcome:
                try:
                    await future
                    outcome[key] = None
                except Exception as exc:  # noqa: BLE001
                    outcome[key] = _translate(exc)
            if outcome[key] is not None:
                sending.results[i] = outcome[key]
        if any(isinstance(r, BrokerUnavailable) for r in sending.results):
            await self.reset()
        return sending.results

    async def publish(self, events: Sequence[Event]) -> list[PublishError | None]:
        """Send a batch and wait for all of it."""
        return await self.collect(await self.send(events))

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
