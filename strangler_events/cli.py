"""``strangler dlq list|replay``, ``strangler reconcile`` and (from
:mod:`strangler_events.reverse_sync.cli`) ``strangler reverse-sync run|status``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
from aiokafka.errors import KafkaError

from strangler_events.dlq import dead_letters, replay
from strangler_events.reconcile import reconcile
from strangler_events.topics import DEAD_LETTER_TOPIC

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


class Config(Protocol):
    """What these commands read of the host program's configuration (the gateway's
    routes.yaml is one): the Kafka settings, ``bootstrap`` among them."""

    @property
    def kafka(self) -> Mapping[str, Any]: ...


def _bootstrap(args: argparse.Namespace, config: Config | None) -> str:
    if args.bootstrap:
        return str(args.bootstrap)
    if config is not None and config.kafka:
        return str(config.kafka["bootstrap"])
    return "127.0.0.1:9092"


def dlq_list(args: argparse.Namespace, config: Config | None) -> int:
    try:
        letters = asyncio.run(dead_letters(_bootstrap(args, config), args.topic))
    except KafkaError as exc:
        print(f"strangler dlq list: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if args.format == "json":
        print(json.dumps([letter.__dict__ for letter in letters], indent=2))
        return EXIT_OK
    if not letters:
        print(f"{args.topic}: empty")
    for letter in letters:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.failed_at))
        original = letter.original
        print(
            f"{letter.event_id}  {letter.event_type or '?'}  from {original['topic']}"
            f"[{original['partition']}]@{original['offset']}  consumer {letter.consumer}"
            f"  attempts {letter.attempts}  {when}Z\n    {letter.error}"
        )
    return EXIT_OK


def dlq_replay(args: argparse.Namespace, config: Config | None) -> int:
    if not args.all and not args.id:
        print("strangler dlq replay: give --id ID (repeatable) or --all", file=sys.stderr)
        return EXIT_INVALID
    bootstrap = _bootstrap(args, config)

    async def job() -> tuple[int, list[str]]:
        letters = await dead_letters(bootstrap, args.topic)
        wanted = set(args.id or ())
        chosen = letters if args.all else [x for x in letters if x.event_id in wanted]
        unknown = sorted(wanted - {x.event_id for x in letters})
        return await replay(bootstrap, chosen), unknown

    try:
        count, unknown = asyncio.run(job())
    except KafkaError as exc:
        print(f"strangler dlq replay: {exc}", file=sys.stderr)
        return EXIT_FAIL
    for ident in unknown:
        print(f"strangler dlq replay: no dead letter with id {ident}", file=sys.stderr)
    print(f"replayed {count} event(s) to their original topics")
    return EXIT_FAIL if unknown else EXIT_OK


def reconcile_cmd(args: argparse.Namespace, config: Config | None) -> int:
    try:
        outcome = asyncio.run(
            reconcile(args.truth, args.model, args.key, args.version_field, args.repair)
        )
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        print(f"strangler reconcile: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    report: dict[str, Any] = {"before": outcome.before.counts()}
    if outcome.after is not None:
        report["repaired"] = outcome.repaired
        report["after"] = outcome.after.counts()
    if args.format == "json":
        report["ids"] = outcome.before.__dict__
        print(json.dumps(report, indent=2))
    else:
        print("found:    " + "  ".join(f"{k} {v}" for k, v in report["before"].items()))
        if outcome.after is not None:
            print(f"repaired: {outcome.repaired}")
            print("after:    " + "  ".join(f"{k} {v}" for k, v in report["after"].items()))
    remaining = outcome.after if outcome.after is not None else outcome.before
    return EXIT_OK if remaining.total == 0 else EXIT_FAIL


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = sub.add_parser("dlq", help="inspect and replay dead-lettered events")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, text in (
        ("list", dlq_list, "list the dead-letter topic"),
        ("replay", dlq_replay, "publish dead letters again to their original topics"),
    ):
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("--bootstrap", help="Kafka bootstrap (default: kafka.bootstrap)")
        p.add_argument("--topic", default=DEAD_LETTER_TOPIC, help="the dead-letter topic")
        if name == "list":
            p.add_argument("--format", choices=("text", "json"), default="text")
        else:
            p.add_argument("--id", action="append", help="an event id (repeatable)")
            p.add_argument("--all", action="store_true", help="every dead letter")
        p.set_defaults(handler=handler, needs_config=False)

    p = sub.add_parser(
        "reconcile",
        help="compare a read model with its source of truth, repair, report",
        description="Compare two JSON list endpoints per aggregate (missing, stale, different, "
        "extra); with --repair, POST to the repair URL for each and compare again. "
        "Exit 0 when nothing differs (after repair), 1 otherwise.",
    )
    p.add_argument("--truth", required=True, metavar="URL", help="e.g. the monolith's list API")
    p.add_argument("--model", required=True, metavar="URL", help="the read model's list API")
    p.add_argument("--key", default="id", help="the aggregate id field (default id)")
    p.add_argument("--version-field", metavar="FIELD", help="e.g. updated_at: older = stale")
    p.add_argument("--repair", metavar="URL", help="POST target per aggregate, with {id}")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=reconcile_cmd, needs_config=False, no_config=True)

    from strangler_events.reverse_sync import cli as reverse_sync_cli

    reverse_sync_cli.add_commands(sub, common)
