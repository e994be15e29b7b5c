"""The relay: marking rules with a fake sink, then drills on real PostgreSQL, broker and gateway:
2,000 writes end to end, a broker outage, a relay killed mid-batch, and failover."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from gateway.capture.kafka_sink import BrokerUnavailable, KafkaSink, PublishError
from gateway.capture.outbox import OutboxStore, RelayState, open_store
from gateway.capture.relay import Relay
from gateway.capture.rules import Event
from tests.eventually import eventually
from tests.gateway.support import capture_routes, gateway, monolith, write_orders
from tests.harness import Broker, free_port


def event(n: int, aggregate: str) -> Event:
    return Event(str(uuid.UUID(int=n)), "order", aggregate, "OrderUpdated", {"n": n}, 1.0, {})


class FakeSink:
    def __init__(self, fail: dict[int, PublishError] | None = None) -> None:
        self.fail = fail or {}
        self.sent: list[int] = []

    async def send(self, events: Sequence[Event]) -> list[PublishError | None]:
        out: list[PublishError | None] = []
        for e in events:
            n = e.payload["n"]
            self.sent.append(n)
            out.append(self.fail.pop(n, None))
        return out

    async def collect(self, handle: list[PublishError | None]) -> list[PublishError | None]:
        return handle

    async def stop(self) -> None:
        pass


class IdSink(FakeSink):
    """Records each event's number from its id (PostgreSQL rows come encoded, no payload)."""

    async def send(self, events: Sequence[Event]) -> list[PublishError | None]:
        self.sent += [uuid.UUID(e.id).int for e in events]
        return [None] * len(events)


async def sqlite_store(tmp: Path) -> OutboxStore:
    store = open_store(f"sqlite:///{tmp}/outbox.db")
    await store.init()
    return store


async def pending_ns(store: OutboxStore) -> list[int]:
    return [r.event.payload["n"] for r in await store.pending(100)]


async def test_transient_failure_holds_back_the_rest_of_that_aggregate(tmp_path: Path) -> None:
    store = await sqlite_store(tmp_path)
    await store.append([event(1, "a"), event(2, "b"), event(3, "a"), event(4, "b")])
    sink = FakeSink({1: BrokerUnavailable("blip")})
    relay = Relay(store, sink)
    try:
        await relay.pump()
    except BrokerUnavailable:
        pass
    # 3 was acknowledged, but it must not overtake 1: both go again, in order
    assert await pending_ns(store) == [1, 3]
    await relay.pump()
    assert await pending_ns(store) == []
    assert sink.sent == [1, 2, 3, 4, 1, 3]
    assert relay.published.get() == 4 and relay.errors.get(("retriable",)) == 1
    await store.close()


async def test_refused_record_is_parked_and_blocks_only_its_aggregate(tmp_path: Path) -> None:
    store = await sqlite_store(tmp_path)
    await store.append([event(1, "a"), event(2, "b"), event(3, "a")])
    relay = Relay(store, FakeSink({1: PublishError("too large")}))
    await relay.pump()
    assert await pending_ns(store) == []  # 3 waits behind the parked 1
    blocked = await store.blocked()
    assert [(b.aggregateid, b.error) for b in blocked] == [("a", "too large")]
    await store.skip(blocked[0].id)
    await relay.pump()
    status = await store.status()
    assert (status.published, status.pending, status.blocked) == (2, 0, 0)  # 2, then 3
    await store.close()


async def test_the_leading_relay_beats_with_what_it_published_and_its_last_error(
    tmp_path: Path,
) -> None:
    store = await sqlite_store(tmp_path)
    reader = await sqlite_store(tmp_path)  # as `strangler outbox status` reads it
    await store.append([event(n, str(n)) for n in range(1, 4)])
    relay = Relay(store, FakeSink({2: PublishError("record too large")}), holder="relay-t")
    task = asyncio.ensure_future(relay.run())
    try:

        async def beat_after_publishing() -> RelayState | None:
            state = await reader.relay_state()
            return state if state is not None and state.beat.published == 2 else None

        state = await eventually(beat_after_publishing, timeout=10, message="a beat after 1, 3")
        assert state is not None and state.beat.holder == "relay-t" and not state.stale
        assert state.beat.lease == relay.lease and state.beat.last_publish_ago is not None
        assert state.beat.last_error == f"event {event(2, '2').id} parked: record too large"
        first = state.beat.leading_for
        # the beats go on while the relay idles: it has led for longer with each
        await eventually(
            lambda: later_beat(reader, first), timeout=10, message="a heartbeat a second later"
        )
    finally:
        relay.stopping.set()
        await task
    assert await reader.relay_state() is None  # it resigned: no relay leads
    await store.close()
    await reader.close()


async def later_beat(reader: OutboxStore, than: float) -> bool:
    state = await reader.relay_state()
    return state is not None and state.beat.leading_for > than


async def test_only_the_leader_publishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await sqlite_store(tmp_path)
    other = await sqlite_store(tmp_path)
    await store.append([event(n, "a") for n in range(1, 6)])
    assert await other.lead("someone-else", 30)
    attempts: list[bool] = []
    lead = store.lead

    async def recorded_lead(holder: str, lease: float) -> bool:
        attempts.append(await lead(holder, lease))
        return attempts[-1]

    monkeypatch.setattr(store, "lead", recorded_lead)
    sink = FakeSink()
    relay = Relay(store, sink, lease=30)
    task = asyncio.ensure_future(relay.run())
    # Two refused rounds: anything the first one wrongly published would show by now.
    await eventually(lambda: attempts[:2] == [False, False], timeout=10)
    assert sink.sent == [] and relay.leader.get() == 0
    await other.resign("someone-else")
    await eventually(lambda: len(sink.sent) >= 5, timeout=10)
    relay.stopping.set()
    await task
    assert sink.sent == [1, 2, 3, 4, 5]
    await store.close()
    await other.close()


async def test_a_crash_between_publish_and_mark_resends_at_most_two_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await sqlite_store(tmp_path)
    await store.append([event(n, str(n % 7)) for n in range(1, 101)])
    mark = store.mark_published
    marks: list[int] = []
    stuck = asyncio.Event()

    async def dies_at_the_third_mark(seqs: Sequence[int]) -> None:
        marks.append(len(seqs))
        if len(marks) >= 3:  # the process dies here: this mark never lands
            stuck.set()
            await asyncio.Event().wait()
        await mark(seqs)

    monkeypatch.setattr(store, "mark_published", dies_at_the_third_mark)
    sink = FakeSink()
    pumping = asyncio.ensure_future(Relay(store, sink, batch=10).pump())
    await eventually(stuck.is_set, timeout=10, message="the third batch's mark under way")
    pumping.cancel()
    await asyncio.gather(pumping, return_exceptions=True)
    monkeypatch.setattr(store, "mark_published", mark)
    before = len(sink.sent)
    assert before <= 40  # it never ran more than one batch ahead of its marks
    await Relay(store, sink, batch=10).pump()  # the standby takes over
    assert sorted(set(sink.sent)) == list(range(1, 101)) and await pending_ns(store) == []
    resent = len(sink.sent) - 100
    assert 0 < resent <= 2 * 10, sink.sent  # the batch being marked and the one after it
    assert sink.sent[before:] == list(range(before - resent + 1, 101))  # in order, again
    await store.close()


async def test_cancelled_while_sending_with_a_mark_that_hangs_the_relay_still_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch's mark hangs (a database that stopped answering) while the second
    batch waits for the broker's acknowledgement; cancelling the relay there ends it (the
    hanging mark is abandoned: its batch is sent again by the next relay)."""
    store = await sqlite_store(tmp_path)
    await store.append([event(n, str(n % 7)) for n in range(1, 21)])
    mark = store.mark_published
    hanging, waiting = asyncio.Event(), asyncio.Event()

    async def hangs(seqs: Sequence[int]) -> None:
        hanging.set()
        await asyncio.Event().wait()

    class SlowSecondBatch(FakeSink):
        async def collect(self, handle: list[PublishError | None]) -> list[PublishError | None]:
            if len(self.sent) > 10:  # the second batch: wait for an ack that never comes
                waiting.set()
                await asyncio.Event().wait()
            return handle

    monkeypatch.setattr(store, "mark_published", hangs)
    sink = SlowSecondBatch()
    pumping = asyncio.ensure_future(Relay(store, sink, batch=10).pump())
    await eventually(lambda: hanging.is_set() and waiting.is_set(), timeout=10)
    pumping.cancel()
    done, _ = await asyncio.wait([pumping], timeout=10)
    assert done, "the cancelled relay waited for a mark that never finishes"
    monkeypatch.setattr(store, "mark_published", mark)
    again = FakeSink()
    await Relay(store, again, batch=10).pump()
    assert again.sent == list(range(1, 21))  # nothing was marked: all sent again, in order
    await store.close()


# --- drills on real services -----------------------------------------------------------


class Collector:
    """Consumes a topic in the background; records (event id, aggregate, payload) in order."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.records: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            group_id=f"collector-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        await consumer.start()

        async def run() -> None:
            try:
                while True:
                    batch = await consumer.getmany(timeout_ms=200)
                    for msgs in batch.values():
                        self.records += [json.loads(m.value) for m in msgs]
            finally:
                await consumer.stop()

        self._task = asyncio.ensure_future(run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def unique(self) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out = []
        for r in self.records:
            if r["id"] not in seen:
                seen.add(r["id"])
                out.append(r)
        return out

    async def wait_for(self, count: int, timeout: float) -> None:
        await eventually(
            lambda: len(self.unique()) >= count,
            timeout=timeout,
            interval=0.1,
            message=f"{count} distinct events on {self.topic} (have {len(self.unique())})",
        )


def assert_in_write_order(
    records: list[dict[str, Any]], written: list[tuple[int, list[int]]]
) -> None:
    by_order: dict[str, list[Any]] = {}
    for r in records:
        body = r["payload"]["request"]
        by_order.setdefault(r["aggregateid"], []).append(
            "created" if r["type"] == "OrderCreated" else body["quantity"]
        )
    assert by_order == {str(oid): ["created", *qs] for oid, qs in written}


async def test_2000_writes_become_2000_events_in_order(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    topic = f"e2e-{uuid.uuid4().hex[:8]}"
    store = open_store(pg_database)
    sink = KafkaSink(kafka_bootstrap, topic)
    relay = Relay(store, sink)
    with monolith(tmp_path) as legacy:
        text = capture_routes(legacy.url, pg_database, tmp_path / "spool", topic, kafka_bootstrap)
        with gateway(text) as (gw, _):
            await store.init()
            running = asyncio.ensure_future(relay.run())
            async with Collector(kafka_bootstrap, topic) as collector:
                written = await write_orders(gw.port, orders=200, updates=9)
                await collector.wait_for(2000, 60)
            relay.stopping.set()
            await running
    await sink.stop()
    await store.close()
    events = collector.unique()
    assert len(events) == 2000
    assert_in_write_order(events, written)


@pytest.mark.kafka  # starts its own broker, to stop it
async def test_broker_outage_then_fresh_broker_delivers_everything(
    tmp_path: Path, pg_database: str
) -> None:
    broker = Broker()
    broker.start()
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    store = open_store(pg_database)
    sink = KafkaSink(broker.bootstrap, topic, request_timeout=2.0)
    relay = Relay(store, sink)
    try:
        with monolith(tmp_path) as legacy:
            text = capture_routes(
                legacy.url, pg_database, tmp_path / "spool", topic, broker.bootstrap
            )
            with gateway(text) as (gw, _):
                await store.init()
                running = asyncio.ensure_future(relay.run())
                async with Collector(broker.bootstrap, topic) as before:
                    first = await write_orders(gw.port, orders=20, updates=4, clients=4)
                    await before.wait_for(100, 30)
                assert len(before.unique()) == 100
                broker.stop()
                # Writes go on while the broker is away; the relay holds them in the outbox.
                second = await write_orders(gw.port, orders=20, updates=4, clients=4)

                async def held() -> bool:
                    failed = relay.errors.get(("retriable",)) > 0  # the relay met the outage
                    return failed and (await store.status()).pending == 100

                await eventually(
                    held, timeout=30, message="a failed publish and the 100 new events held"
                )
                broker.start()  # a fresh, empty broker on the same port
                async with Collector(broker.bootstrap, topic) as after:
                    await after.wait_for(100, 60)
                relay.stopping.set()
                await running
    finally:
        await sink.stop()
        await store.close()
        broker.stop()
    assert len(after.unique()) == 100
    assert_in_write_order(before.unique(), first)
    assert_in_write_order(after.unique(), second)


def relay_process(config: Path, metrics_port: int, batch: int = 2000) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "outbox",
            "relay",
            "-c",
            str(config),
            "--batch",
            str(batch),
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def relay_config(tmp: Path, dsn: str, bootstrap: str, topic: str) -> Path:
    path = tmp / "relay.yaml"
    path.write_text(capture_routes("http://127.0.0.1:1", dsn, tmp / "spool", topic, bootstrap))
    return path


def leader(port: int) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("strangler_relay_leader "):
            return float(line.split()[1])
    return None


async def test_relay_killed_mid_batch_loses_nothing(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    store = open_store(pg_database)
    await store.init()
    await store.append([event(n, str(n % 50)) for n in range(1, 20001)])
    config = relay_config(tmp_path, pg_database, kafka_bootstrap, topic)
    async with Collector(kafka_bootstrap, topic) as collector:
        # Small batches: the whole topic takes seconds, so the kill lands mid-stream even
        # when this test's loop is busy with the collector.
        proc = relay_process(config, free_port(), batch=100)

        async def published() -> int:
            return (await store.status()).published

        # The process may take a while to start on a busy machine.
        await eventually(published, timeout=30, message="the first relay publishing")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = (await store.status()).published
        assert 0 < killed_at < 20000, killed_at  # really mid-stream
        proc = relay_process(config, free_port())
        try:

            async def drained() -> bool:
                return (await store.status()).pending == 0

            await eventually(drained, timeout=30, interval=0.1, message="an empty outbox")
            await collector.wait_for(20000, 30)
        finally:
            proc.terminate()
            proc.wait()
    await store.close()
    ids = [r["id"] for r in collector.records]
    assert len(set(ids)) == 20000
    # Duplicates come only from work in flight at the kill: the batch not yet acknowledged
    # and the one acknowledged but not yet marked published (the relay pipelines them).
    assert len(ids) - 20000 <= 2 * 2000
    per_aggregate: dict[str, list[int]] = {}
    for r in collector.unique():
        per_aggregate.setdefault(r["aggregateid"], []).append(r["payload"]["n"])
    assert all(ns == sorted(ns) for ns in per_aggregate.values())


async def test_two_relays_one_active_and_failover(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    topic = f"ha-{uuid.uuid4().hex[:8]}"
    store = open_store(pg_database)
    await store.init()
    config = relay_config(tmp_path, pg_database, kafka_bootstrap, topic)
    ports = [free_port(), free_port()]
    procs = [relay_process(config, p) for p in ports]
    try:
        async with Collector(kafka_bootstrap, topic) as collector:
            await store.append([event(n, str(n % 7)) for n in range(1, 501)])
            await collector.wait_for(500, 30)
            states = [leader(p) for p in ports]
            assert sorted(s or 0.0 for s in states) == [0.0, 1.0], states
            active = states.index(1.0)
            procs[active].send_signal(signal.SIGKILL)
            procs[active].wait()
            await store.append([event(n, str(n % 7)) for n in range(501, 1001)])
            await collector.wait_for(1000, 30)
            assert leader(ports[1 - active]) == 1.0
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        await store.close()
    per_aggregate: dict[str, list[int]] = {}
    for r in collector.unique():
        per_aggregate.setdefault(r["aggregateid"], []).append(r["payload"]["n"])
    assert sum(len(v) for v in per_aggregate.values()) == 1000
    assert all(ns == sorted(ns) for ns in per_aggregate.values())


async def test_a_row_committed_after_the_relay_read_past_it_goes_before_its_aggregates_next(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL hands out seqs at insert: a writer can take seq 2 and commit after seq 3
    was read.  When the next write of its aggregate (seq 4) is in the rows read ahead,
    it must not overtake 2 (seen: a service's order update lost in the reverse sync)."""
    import asyncpg

    store = open_store(pg_database)
    await store.init()
    await store.append([event(1, "b")])
    slow = await asyncpg.connect(pg_database)
    writing = slow.transaction()
    await writing.start()  # takes the next seq for aggregate "a", commits later
    await slow.execute(
        "INSERT INTO strangler_outbox (id, aggregatetype, aggregateid, type, payload,"
        " occurred_at, headers) VALUES ($1, 'order', 'a', 'OrderUpdated', $2::jsonb, now(),"
        " '{}'::jsonb)",
        event(2, "a").id,
        json.dumps({"n": 2}),
    )
    await store.append([event(3, "b")])
    reads: list[int] = []
    read = store.pending

    async def pending(limit: int, after: int = 0) -> Any:
        reads.append(after)
        if len(reads) == 2:  # the read ahead, after 1 and 3 were read: 2 commits, 4 comes
            await writing.commit()
            await store.append([event(4, "a")])
        return await read(limit, after)

    monkeypatch.setattr(store, "pending", pending)
    sink = IdSink()
    try:
        await Relay(store, sink).pump()
        assert [n for n in sink.sent if n in (2, 4)] == [2, 4]  # "a" in order
        assert sorted(sink.sent) == [1, 2, 3, 4] and await read(100) == []
    finally:
        await slow.close()
        await store.close()
