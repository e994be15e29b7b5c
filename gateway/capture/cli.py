"""``strangler outbox ...``: init, status, doubts, skip, relay and the capture triggers.

``status`` (text, or ``--format json``) shows the backlog and the relay's state from its
heartbeat: who leads, how old the last beat is (stale after a few lease TTLs), what it
published and its last error; "none" when no relay leads."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any

from gateway.capture.kafka_sink import KafkaSink
from gateway.capture.outbox import (
    STALE_AFTER_LEASES,
    OutboxError,
    OutboxStore,
    OutboxUnavailable,
    RelayState,
    open_store,
)
from gateway.capture.relay import Relay
from gateway.capture.triggers import TriggerError, TriggerSpec, install_sql, uninstall_sql
from gateway.config import Config
from gateway.metrics.registry import Registry, render

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2
log = logging.getLogger("strangler.outbox")


def _store(args: argparse.Namespace, config: Config | None) -> OutboxStore:
    url = getattr(args, "dsn", None) or (config.outbox["url"] if config else None)
    if not url:
        raise OutboxError("no outbox: give --dsn or a routes.yaml with outbox.url")
    return open_store(url)


def _run(job: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(job())
    except OutboxError as exc:
        print(f"outbox: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except TriggerError as exc:
        print(f"outbox: {exc}", file=sys.stderr)
        return EXIT_INVALID


def init(args: argparse.Namespace, config: Config | None) -> int:
    async def job() -> int:
        store = _store(args, config)
        try:
            await store.init()
        finally:
            await store.close()
        print(f"outbox schema ready at {store.url}")
        return EXIT_OK

    return _run(job)


def _age(seconds: float | None) -> str:
    return f"{seconds:.1f}s" if seconds is not None else "-"


def relay_lines(relay: RelayState | None) -> list[str]:
    """The relay's state as ``strangler outbox status`` prints it."""
    if relay is None:
        return ["relay: none (no relay leads)"]
    r = relay.to_json()
    rate = f", {r['rate']}/s on average" if r["rate"] is not None else ""
    lines = [
        f"relay: {r['holder']}{' STALE' if r['stale'] else ''}, last heartbeat "
        f"{_age(r['heartbeat_age'])} ago (lease {r['lease']:g}s), leading for "
        f"{_age(r['leading_for'])}",
        f"relay published: {r['published']}{rate}, last publish {_age(r['last_publish_age'])} ago",
    ]
    if r["stale"]:
        lines.append(
            "  no heartbeat for more than "
            f"{STALE_AFTER_LEASES} leases: the relay died or cannot reach the outbox"
        )
    if r["last_error"]:
        lines.append(f"relay last error ({_age(r['last_error_age'])} ago): {r['last_error']}")
    return lines


def status(args: argparse.Namespace, config: Config | None) -> int:
    async def job() -> int:
        store = _store(args, config)
        try:
            s = await store.status()
            blocked = await store.blocked()
            relay = await store.relay_state()
        finally:
            await store.close()
        if getattr(args, "format", "text") == "json":
            shown = {
                **asdict(s),
                "blocked_events": [asdict(b) for b in blocked],
                "relay": relay.to_json() if relay is not None else None,
            }
            print(json.dumps(shown, indent=2))
            return EXIT_OK
        age = f"{s.oldest_pending_age:.1f}s" if s.oldest_pending_age is not None else "-"
        print(
            f"pending: {s.pending}\noldest pending age: {age}\npublished: {s.published}\n"
            f"in doubt: {s.doubts}\nblocked: {s.blocked}"
        )
        for b in blocked:
            print(
                f"  blocked {b.id} ({b.aggregatetype} {b.aggregateid}): {b.error}"
                f"  -> strangler outbox skip {b.id}"
            )
        print("\n".join(relay_lines(relay)))
        return EXIT_OK

    return _run(job)


def doubts(args: argparse.Namespace, config: Config | None) -> int:
    async def job() -> int:
        store = _store(args, config)
        try:
            entries = await store.doubts(args.limit)
        finally:
            await store.close()
        for d in entries:
            print(
                f"{d.request_id}\t{d.route}\t{d.method} {d.path}\t"
                f"status={d.status if d.status is not None else '-'}\t{d.event_type}\t{d.reason}"
            )
        print(f"{len(entries)} in doubt", file=sys.stderr)
        return EXIT_OK

    return _run(job)


def skip(args: argparse.Namespace, config: Config | None) -> int:
    async def job() -> int:
        store = _store(args, config)
        try:
            done = await store.skip(args.id)
        finally:
            await store.close()
        print(f"{args.id}: {'skipped' if done else 'not found among unpublished events'}")
        return EXIT_OK if done else EXIT_FAIL

    return _run(job)


def install_triggers(args: argparse.Namespace, config: Config | None) -> int:
    async def job() -> int:
        from gateway.capture.outbox.postgres import PostgresOutbox

        spec = TriggerSpec.build(args.table, args.aggregate, args.id_column, args.events)
        sql = install_sql(spec)
        store = PostgresOutbox(args.dsn)
        try:
            await store.init()  # the outbox must live in the monolith's database
            await store.execute(sql)
        finally:
            await store.close()
        print(
            f"capturing {args.table} as {spec.aggregate}: {spec.created}, {spec.updated}, "
            f"{spec.deleted}"
        )
        return EXIT_OK

    return _run(job)


def uninstall_triggers(args: argparse.Namespace, config: Config | None) -> int:
    async def job() -> int:
        from gateway.capture.outbox.postgres import PostgresOutbox

        sql = uninstall_sql(args.table)
        store = PostgresOutbox(args.dsn)
        try:
            await store.execute(sql)
        finally:
            await store.close()
        print(f"capture triggers removed from {args.table}")
        return EXIT_OK

    return _run(job)


def relay(args: argparse.Namespace, config: Config | None) -> int:
    if config is None:
        return EXIT_INVALID
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    kafka = config.kafka

    async def job() -> int:
        registry = Registry()
        store = _store(args, config)
        sink = KafkaSink(kafka["bootstrap"], kafka["topic"], kafka["idempotence"])
        worker = Relay(
            store, sink, batch=args.batch, retention=config.outbox["retention"], registry=registry
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stopping.set)
        server = (
            await _metrics_server(args.metrics_listen, registry) if args.metrics_listen else None
        )
        try:
            try:
                await store.init()  # the gateway may not have created the tables yet
            except OutboxUnavailable as exc:
                log.warning("outbox not reachable yet (the relay keeps trying): %s", exc)
            await worker.run()
        finally:
            if server is not None:
                server.close()
            await sink.stop()
            await store.close()
        return EXIT_OK

    return _run(job)


async def _metrics_server(listen: str, registry: Registry) -> asyncio.Server:
    """A bare /metrics endpoint for the relay process (Prometheus text)."""
    host, _, port = listen.rpartition(":")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = render(registry.snapshot()).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%b" % (len(body), body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, int(port))


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    g = sub.add_parser("outbox", help="manage the transactional outbox and its relay to Kafka")
    gsub = g.add_subparsers(dest="action", required=True, metavar="ACTION")
    dsn = argparse.ArgumentParser(add_help=False)
    dsn.add_argument("--dsn", help="outbox database URL (default: outbox.url of routes.yaml)")

    p = gsub.add_parser("init", parents=[common, dsn], help="create or migrate the schema")
    p.set_defaults(handler=init, needs_config=False)
    p = gsub.add_parser(
        "status", parents=[common, dsn], help="pending, lag, published, doubts, relay state"
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=status, needs_config=False)
    p = gsub.add_parser("doubts", parents=[common, dsn], help="writes that produced no event")
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(handler=doubts, needs_config=False)
    p = gsub.add_parser("skip", parents=[common, dsn], help="never publish a blocked event")
    p.add_argument("id", help="the event id")
    p.set_defaults(handler=skip, needs_config=False)
    p = gsub.add_parser("relay", parents=[common, dsn], help="publish the outbox to Kafka")
    p.add_argument("--batch", type=int, default=2000, help="rows per round (default 2000)")
    p.add_argument("--metrics-listen", metavar="HOST:PORT", help="serve /metrics here")
    p.set_defaults(handler=relay, needs_config=True)
    p = gsub.add_parser(
        "install-triggers",
        parents=[common],
        help="capture a monolith table's row changes (PostgreSQL)",
    )
    p.add_argument("--dsn", required=True, help="the monolith's PostgreSQL URL")
    p.add_argument("--table", required=True)
    p.add_argument("--aggregate", required=True)
    p.add_argument("--id-column", default="id")
    p.add_argument("--events", help="CREATED,UPDATED,DELETED event names")
    p.set_defaults(handler=install_triggers, needs_config=False)
    p = gsub.add_parser("uninstall-triggers", parents=[common], help="remove capture triggers")
    p.add_argument("--dsn", required=True)
    p.add_argument("--table", required=True)
    p.set_defaults(handler=uninstall_triggers, needs_config=False)
