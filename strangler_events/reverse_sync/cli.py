"""``strangler reverse-sync run|status``: apply a service's events to the legacy system, and
show how far behind it is.

    strangler reverse-sync run --bootstrap HOST:PORT --topic events.order --aggregate order \\
        --source order-service --url 'http://legacy/api/orders/{id}' \\
        --upsert OrderCreated,OrderUpdated --delete OrderDeleted --inbox postgresql://...
    strangler reverse-sync status --bootstrap ... --topic events.order --aggregate order \\
        --inbox postgresql://...

``run`` runs until SIGTERM or SIGINT.  When ``--url`` points at the gateway, pass
``--origin-token-env NAME``: the variable holding the secret the gateway's
``proxy.origin_token_env`` names, without which the gateway removes the origin header
and captures the sync's writes (an echo).  ``--metrics-listen HOST:PORT`` serves the
consumer's metrics at ``/metrics``; the lag is ``strangler_consumer_lag{consumer=
"reverse-sync-AGGREGATE", topic, partition}``, records behind each partition's end.
``status`` prints the total lag, then per partition the position applied, the log's end
and the lag (``--format json``: ``{"aggregate", "group", "lag", "partitions": [...]}``);
it exits 1 when the sync is behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from strangler_events.database import DatabaseError, open_database
from strangler_events.reverse_sync.http import HttpWriter
from strangler_events.reverse_sync.plan import SyncError, SyncTarget
from strangler_events.reverse_sync.runner import DEFAULT_DELAYS, ReverseSync, group_of, lag

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def target_of(args: argparse.Namespace) -> SyncTarget:
    return SyncTarget(
        args.aggregate, args.url, args.source, _names(args.upsert), _names(args.delete)
    )


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--delays {text!r}: expected seconds separated by commas, e.g. 0.5,1,5"
        ) from None
    if not delays or any(d < 0 for d in delays):
        raise argparse.ArgumentTypeError(f"--delays {text!r}: expected seconds >= 0")
    return delays


async def _serve_metrics(listen: str, sync: ReverseSync) -> asyncio.Server:
    host, _, port = listen.rpartition(":")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            body = generate_latest(sync.metrics.registry)
            head = (
                f"HTTP/1.1 200 OK\r\ncontent-type: {CONTENT_TYPE_LATEST}\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, host or "127.0.0.1", int(port))


def _origin_token(args: argparse.Namespace) -> str | None:
    """The secret ``--origin-token-env`` names (None without the option)."""
    if not args.origin_token_env:
        return None
    token = os.environ.get(args.origin_token_env, "")
    if not token:
        raise SyncError(
            f"--origin-token-env names {args.origin_token_env}, but that variable is empty "
            "or unset; set it or write to the legacy system directly"
        )
    return token


async def _run(args: argparse.Namespace, target: SyncTarget, token: str | None) -> int:
    database = open_database(args.inbox)
    sync = ReverseSync(
        args.bootstrap,
        [args.topic],
        target,
        database,
        group=args.group,
        delays=args.delays,
        writer=HttpWriter(origin_token=token),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await _serve_metrics(args.metrics_listen, sync) if args.metrics_listen else None
    await sync.start()

    async def until_stopped() -> None:
        await stop.wait()
        await sync.stop()  # run() returns once the consumer is stopped

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(sync.run(), name=f"reverse-sync-{target.aggregate}")
            group.create_task(until_stopped(), name="reverse-sync-signals")
    finally:
        await sync.stop()
        if server is not None:
            server.close()
        await database.close()
    return EXIT_OK


def run_cmd(args: argparse.Namespace, config: Any) -> int:
    try:
        target = target_of(args)
        token = _origin_token(args)
    except SyncError as exc:
        print(f"strangler reverse-sync run: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        return asyncio.run(_run(args, target, token))
    except (KafkaError, DatabaseError, OSError) as exc:
        print(f"strangler reverse-sync run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


async def _status(args: argparse.Namespace) -> list[Any]:
    database = open_database(args.inbox)
    try:
        group = args.group or f"reverse-sync-{args.aggregate}"
        return await lag(args.bootstrap, [args.topic], database, group)
    finally:
        await database.close()


def status_cmd(args: argparse.Namespace, config: Any) -> int:
    try:
        rows = asyncio.run(_status(args))
    except (KafkaError, DatabaseError, OSError) as exc:
        print(f"strangler reverse-sync status: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    behind = sum(r.lag for r in rows)
    if args.format == "json":
        fields = ("topic", "partition", "position", "end", "lag")
        shown = {
            "aggregate": args.aggregate,
            "group": args.group or f"reverse-sync-{args.aggregate}",
            "lag": behind,
            "partitions": [{f: getattr(r, f) for f in fields} for r in rows],
        }
        print(json.dumps(shown, indent=2))
    else:
        print(f"reverse sync of {args.aggregate}: {behind} event(s) behind")
        for r in rows:
            print(f"  {r.topic}[{r.partition}]  applied to {r.position}  end {r.end}  lag {r.lag}")
    return EXIT_FAIL if behind else EXIT_OK


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = sub.add_parser("reverse-sync", help="apply a service's events to the legacy system")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, text in (
        ("run", run_cmd, "apply the events, until stopped"),
        ("status", status_cmd, "how far behind the reverse sync is, per partition"),
    ):
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
        p.add_argument("--topic", required=True, help="the service's topic, e.g. events.order")
        p.add_argument("--aggregate", required=True, help="the aggregate type, e.g. order")
        p.add_argument("--inbox", required=True, metavar="URL", help="the inbox's database")
        p.add_argument("--group", help="consumer group (default reverse-sync-AGGREGATE)")
        if name == "run":
            p.add_argument("--url", required=True, help="legacy item URL with {id}")
            p.add_argument("--source", required=True, help="metadata.source of the events")
            p.add_argument("--upsert", help="event types that PUT the state (comma list)")
            p.add_argument("--delete", help="event types that DELETE (comma list)")
            p.add_argument("--delays", type=_delays, default=DEFAULT_DELAYS, help="retry delays")
            p.add_argument("--metrics-listen", metavar="HOST:PORT", help="serve /metrics here")
            p.add_argument(
                "--origin-token-env",
                metavar="NAME",
                help="variable with the gateway's origin token (when --url is the gateway)",
            )
        else:
            p.add_argument("--format", choices=("text", "json"), default="text")
        p.set_defaults(handler=handler, needs_config=False, no_config=True)


__all__ = ["add_commands", "group_of", "run_cmd", "status_cmd", "target_of"]
