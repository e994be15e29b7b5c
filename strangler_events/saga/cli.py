"""``strangler saga list|show``: saga instances and their timelines, from a shell.

``list [--state S] [--saga NAME] [--format json]`` prints the instances with their state,
oldest first; ``show ID [--saga NAME] [--format json]`` prints an instance's timeline:
each step's command, its reply, timeouts, compensations, with times.  The store is
``--store URL``, else ``$STRANGLER_SAGA_STORE``, else the outbox database of routes.yaml
(the saga store lives beside the outbox: its commands commit with its state), else the
demo's ``sqlite:///./strangler-outbox.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from strangler_events.database.factory import open_database
from strangler_events.database.port import DatabaseError
from strangler_events.saga.instance import STATES, Instance
from strangler_events.saga.store import SagaStore

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2
ENV_URL: Final = "STRANGLER_SAGA_STORE"
DEFAULT_URL: Final = "sqlite:///./strangler-outbox.db"


class Config(Protocol):
    """What these commands read of the host program's configuration: the outbox."""

    @property
    def outbox(self) -> Mapping[str, Any]: ...


def store_url(args: argparse.Namespace, config: Config | None) -> str:
    if getattr(args, "store", None):
        return str(args.store)
    if config is not None and config.outbox.get("url"):
        return str(config.outbox["url"])
    return DEFAULT_URL


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


def summary(inst: Instance) -> dict[str, Any]:
    return {
        "saga": inst.saga,
        "id": inst.id,
        "state": inst.state,
        "version": inst.version,
        "started_at": inst.started_at,
        "updated_at": inst.updated_at,
        "deadline": inst.deadline,
        "reason": inst.reason,
    }


def format_list(instances: list[Instance]) -> list[str]:
    if not instances:
        return ["no saga instances"]
    rows = [
        (i.id, i.saga, i.state, _when(i.started_at), f"{i.updated_at - i.started_at:.3f}s")
        + (i.reason or "",)
        for i in instances
    ]
    heads = ("ID", "SAGA", "STATE", "STARTED", "TOOK", "REASON")
    widths = [max(len(str(r[c])) for r in [heads, *rows]) for c in range(len(heads) - 1)]
    return [
        "  ".join(str(v).ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in [heads, *rows]
    ]


def _entry(entry: dict[str, Any], started: float) -> str:
    rest = {k: v for k, v in entry.items() if k not in ("at", "kind", "step", "type")}
    extra = "  ".join(f"{k}={v}" for k, v in rest.items())
    parts = [
        f"+{entry['at'] - started:8.3f}s",
        _when(entry["at"]),
        f"{entry['kind']:<12}",
        f"{entry.get('step') or '':<10}",
        f"{entry.get('type') or '':<22}",
        extra,
    ]
    return "  ".join(parts).rstrip()


def format_timeline(inst: Instance) -> list[str]:
    head = f"{inst.saga} {inst.id}: {inst.state} (version {inst.version})"
    if inst.reason:
        head += f" -- {inst.reason}"
    lines = [head]
    lines.extend("  " + _entry(e, inst.started_at) for e in inst.timeline)
    return lines


def _run(
    args: argparse.Namespace, config: Config | None, job: Callable[[SagaStore], Awaitable[int]]
) -> int:
    async def main() -> int:
        database = open_database(store_url(args, config))
        try:
            return await job(SagaStore(database))
        finally:
            await database.close()

    try:
        return asyncio.run(main())
    except (DatabaseError, OSError, ValueError) as exc:
        print(f"strangler saga {args.action}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:  # the driver's own errors (no such table, ...)
        print(f"strangler saga {args.action}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


def list_cmd(args: argparse.Namespace, config: Config | None = None) -> int:
    async def job(store: SagaStore) -> int:
        found = await store.instances(args.saga, args.state, args.limit)
        if args.format == "json":
            print(json.dumps([summary(i) for i in found], indent=2))
        else:
            print("\n".join(format_list(found)))
        return EXIT_OK

    return _run(args, config, job)


def show_cmd(args: argparse.Namespace, config: Config | None = None) -> int:
    async def job(store: SagaStore) -> int:
        found = await store.get(args.id, args.saga)
        if not found:
            print(f"strangler saga show: no saga instance {args.id!r}", file=sys.stderr)
            return EXIT_FAIL
        if args.format == "json":
            out = [{**summary(i), "data": i.data, "timeline": i.timeline} for i in found]
            print(json.dumps(out, indent=2))
        else:
            print("\n\n".join("\n".join(format_timeline(i)) for i in found))
        return EXIT_OK

    return _run(args, config, job)


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = sub.add_parser("saga", help="list saga instances and show their timelines")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("list", parents=[common], help="instances with their state")
    p.add_argument("--state", choices=STATES, help="only instances in this state")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    p.set_defaults(handler=list_cmd)
    p = actions.add_parser("show", parents=[common], help="an instance's timeline")
    p.add_argument("id", metavar="ID", help="the instance id (its key, e.g. the order id)")
    p.set_defaults(handler=show_cmd)
    for action in actions.choices.values():
        action.add_argument("--saga", metavar="NAME", help="only this saga's instances")
        action.add_argument("--format", choices=("text", "json"), default="text")
        action.add_argument(
            "--store",
            metavar="URL",
            default=os.environ.get(ENV_URL) or None,
            help=f"the saga store (default: ${ENV_URL}, else routes.yaml's outbox URL, "
            f"else {DEFAULT_URL})",
        )
        action.set_defaults(needs_config=False)
