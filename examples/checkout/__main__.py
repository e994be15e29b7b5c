"""``python -m examples.checkout serve|place``: run the checkout example's services, or
place an order.

    python -m examples.checkout serve --database URL --bootstrap HOST:PORT [--relay]
    python -m examples.checkout place --database URL ORDER_ID --sku book --amount 20

``serve`` runs the saga runner and the inventory, payment and shipping participants on
one database (``--no-saga``, ``--only NAME`` pick fewer), and with ``--relay`` the outbox
relay too (otherwise ``strangler outbox relay`` must run on that database).  SIGTERM or
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from examples.checkout import inventory, services
from examples.checkout.drills import KillPoint
from examples.checkout.orders import order_placed, place
from examples.checkout.saga import checkout_saga
from gateway.capture.kafka_sink import KafkaSink
from strangler_events.consumer import ResilientConsumer
from strangler_events.database.factory import open_database
from strangler_events.database.port import Database
from strangler_events.saga.definition import Retry, SagaDefinition
from strangler_events.saga.runner import SagaRunner


async def _services(
    args: argparse.Namespace,
    database: Database,
    definition: SagaDefinition,
    kill: KillPoint | None,
) -> tuple[list[SagaRunner], list[ResilientConsumer]]:
    """The saga runner and the participants' consumers the options ask for."""
    await services.prepare(database)
    await inventory.ensure_stock(database, dict(_level(x) for x in args.stock or ["book=100"]))
    consumers = services.participants(
        database,
        args.bootstrap,
        only=() if args.no_participants else (args.only or services.PARTICIPANTS),
        decline_cards=args.decline_card or ("4000000000000002",),
        decline_over=args.decline_over,
        release_failures=args.release_failures,
    )
    if args.no_saga:
        return [], consumers
    hook = kill.before_commit if kill else None
    runner = SagaRunner(
        definition, database, args.bootstrap, before_commit=hook, delays=(0.2, 1.0, 2.0)
    )
    return [runner], consumers


async def serve(args: argparse.Namespace) -> int:
    database = open_database(args.database)
    definition = checkout_saga(
        step_timeout=args.step_timeout,
        compensation_timeout=args.step_timeout,
        compensation_retry=Retry(attempts=5, backoff=0.2),
    )
    kill = KillPoint.parse(args.kill_at, definition) if args.kill_at else None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    relay = None
    if args.relay:
        kafka = KafkaSink(args.bootstrap, services.TEMPLATE)
        sink = kill.sink(kafka) if kill else kafka
        relay = await services.relay(args.database, args.bootstrap, sink)
    runners, consumers = await _services(args, database, definition, kill)
    parts: list[SagaRunner | ResilientConsumer] = [*runners, *consumers]
    for part in parts:
        await part.start()
    try:
        async with asyncio.TaskGroup() as group:
            for runner in runners:
                group.create_task(runner.run(), name="checkout-saga")
            for consumer in consumers:
                group.create_task(consumer.run(), name=f"checkout-{consumer.group}")
            if relay is not None:
                group.create_task(relay.run(), name="checkout-relay")
            await stopping.wait()
            if relay is not None:
                relay.stopping.set()
            for part in parts:
                await part.stop()
    finally:
        if relay is not None:
            await relay.sink.stop()
            await relay.store.close()
        await database.close()
    return 0


def _level(text: str) -> tuple[str, int]:
    sku, _, count = text.partition("=")
    if not sku or not count.isdigit():
        raise SystemExit(f"--stock {text!r}: expected SKU=N, e.g. book=100")
    return sku, int(count)


async def place_cmd(args: argparse.Namespace) -> int:
    database = open_database(args.database)
    try:
        fields = {"sku": args.sku, "quantity": args.quantity, "amount": args.amount}
        await place(database, order_placed(args.order_id, card=args.card, **fields))
    finally:
        await database.close()
    print(f"placed order {args.order_id}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.checkout")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the saga and the participants")
    s.add_argument("--database", required=True, help="postgresql://... or sqlite:///PATH")
    s.add_argument("--bootstrap", default="127.0.0.1:9092")
    s.add_argument("--relay", action="store_true", help="run the outbox relay here too")
    s.add_argument("--no-saga", action="store_true", help="participants only")
    s.add_argument("--no-participants", action="store_true", help="the saga only")
    s.add_argument("--only", action="append", choices=services.PARTICIPANTS, help="participant")
    s.add_argument("--step-timeout", type=float, default=30.0, help="seconds per step")
    s.add_argument("--decline-card", action="append", help="a card number payment declines")
    s.add_argument("--decline-over", type=float, help="payment declines amounts from this on")
    s.add_argument("--release-failures", type=int, default=0, help="fail N releases (-1: all)")
    s.add_argument("--stock", action="append", metavar="SKU=N", help="initial stock (book=100)")
    s.add_argument("--kill-at", metavar="POINT:STEP", help="SIGKILL itself there (drills)")
    o = sub.add_parser("place", help="place an order (OrderPlaced into the outbox)")
    o.add_argument("--database", required=True)
    o.add_argument("order_id")
    o.add_argument("--sku", default="book")
    o.add_argument("--quantity", type=int, default=1)
    o.add_argument("--amount", type=float, default=20.0)
    o.add_argument("--card", default="4242424242424242")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    job = serve(args) if args.command == "serve" else place_cmd(args)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
