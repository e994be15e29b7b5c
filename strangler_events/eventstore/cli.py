"""``strangler events show|tail|count``: look into an event store from a shell.

``show STREAM`` prints one stream, ``tail CATEGORY`` a category from a position (and
keeps following with ``--follow``), ``count`` the events per type (of a category or
of everything).  Long reads go page by page and say how far they are on stderr every
``--progress`` events, so stdout stays clean for pipes.  ``--store URL`` picks the
store (default ``$STRANGLER_EVENT_STORE``, else ``sqlite:///./events.db``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TextIO

from strangler_events.eventstore.factory import default_url, open_event_store
from strangler_events.eventstore.port import (
    EventStore,
    EventStoreError,
    RecordedEvent,
    validate_category,
    validate_stream,
)

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2
PAGE = 1000
PROGRESS_EVERY = 10_000


def format_event(event: RecordedEvent, with_stream: bool) -> str:
    """One line: position, (stream,) version, recorded time, type, schema version, data."""
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event.recorded_at))
    where = f"{event.stream} v{event.version}" if with_stream else f"v{event.version}"
    data = json.dumps(event.data, separators=(",", ":"), sort_keys=True)
    return f"@{event.position}  {where}  {when}Z  {event.type}/{event.schema_version}  {data}"


def event_json(event: RecordedEvent) -> str:
    return json.dumps(
        {
            "position": event.position,
            "stream": event.stream,
            "version": event.version,
            "id": event.id,
            "type": event.type,
            "schema_version": event.schema_version,
            "recorded_at": event.recorded_at,
            "data": event.data,
            "metadata": event.metadata,
        },
        separators=(",", ":"),
    )


def format_counts(counts: Mapping[str, int], scope: str) -> list[str]:
    """The per-type table, most frequent first, then the total."""
    if not counts:
        return [f"{scope}: no events"]
    width = max(len(t) for t in counts)
    lines = [f"{t:<{width}}  {n}" for t, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
    return [*lines, f"{'total':<{width}}  {sum(counts.values())}"]


class Progress:
    """Says on ``out`` how many events a long read has gone through, every ``every``."""

    def __init__(self, what: str, every: int, out: TextIO) -> None:
        self.what, self.every, self.out = what, every, out
        self.count = 0
        self._next = every

    def add(self, n: int, position: int) -> None:
        self.count += n
        if self.every > 0 and self.count >= self._next:
            print(f"{self.what}: {self.count} events read (position {position})", file=self.out)
            self._next = (self.count // self.every + 1) * self.every


async def stream_pages(
    store: EventStore, stream: str, from_version: int | None, backwards: bool
) -> AsyncIterator[list[RecordedEvent]]:
    start = from_version
    while True:
        page = await store.read_stream(stream, start, backwards, PAGE)
        if not page:
            return
        yield page
        if len(page) < PAGE:
            return
        start = page[-1].version + (-1 if backwards else 1)
        if start < 1:
            return


async def position_pages(
    store: EventStore, category: str | None, after: int, member: int, size: int
) -> AsyncIterator[list[RecordedEvent]]:
    while True:
        if category is None:
            page = await store.read_all(after, PAGE, member, size)
        else:
            page = await store.read_category(category, after, PAGE, member, size)
        if not page:
            return
        yield page
        after = page[-1].position


def _run(args: argparse.Namespace, job: Callable[[EventStore], Any]) -> int:
    """Open the store, run ``job``, close; errors become exit codes and one stderr line."""

    async def main() -> int:
        store = open_event_store(args.store or default_url())
        try:
            result: int = await job(store)
            return result
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return EXIT_OK
    except ValueError as exc:  # an invalid name or option (InvalidStreamName is one)
        print(f"strangler events {args.action}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except EventStoreError as exc:
        print(f"strangler events {args.action}: {exc}", file=sys.stderr)
        return EXIT_FAIL


def _emit(event: RecordedEvent, args: argparse.Namespace, with_stream: bool) -> None:
    print(event_json(event) if args.format == "json" else format_event(event, with_stream))


def show(args: argparse.Namespace, config: object = None) -> int:
    async def job(store: EventStore) -> int:
        validate_stream(args.stream)
        progress = Progress(f"show {args.stream}", args.progress, sys.stderr)
        async for page in stream_pages(store, args.stream, args.from_version, args.backwards):
            for event in page:
                _emit(event, args, with_stream=False)
            progress.add(len(page), page[-1].position)
        if progress.count == 0:
            print(f"{args.stream}: no events", file=sys.stderr)
        return EXIT_OK

    return _run(args, job)


def tail(args: argparse.Namespace, config: object = None) -> int:
    async def job(store: EventStore) -> int:
        validate_category(args.category)
        progress = Progress(f"tail {args.category}", args.progress, sys.stderr)
        last = args.from_position
        while True:
            async for page in position_pages(store, args.category, last, args.member, args.size):
                for event in page:
                    _emit(event, args, with_stream=True)
                last = page[-1].position
                progress.add(len(page), last)
                sys.stdout.flush()
            if not args.follow:
                break
            await asyncio.sleep(args.interval)
        print(
            f"{args.category}: up to position {last} (resume with --from {last})", file=sys.stderr
        )
        return EXIT_OK

    return _run(args, job)


def count(args: argparse.Namespace, config: object = None) -> int:
    async def job(store: EventStore) -> int:
        if args.category is not None:
            validate_category(args.category)
        scope = args.category or "all categories"
        progress = Progress(f"count {scope}", args.progress, sys.stderr)
        counts: Counter[str] = Counter()
        async for page in position_pages(store, args.category, 0, 0, 1):
            counts.update(e.type for e in page)
            progress.add(len(page), page[-1].position)
        for line in format_counts(counts, scope):
            print(line)
        return EXIT_OK

    return _run(args, job)


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = sub.add_parser("events", help="show, tail and count an event store's events")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("show", parents=[common], help="print one stream's events")
    p.add_argument("stream", metavar="STREAM", help="e.g. order-42")
    p.add_argument("--from-version", type=int, metavar="N", help="start at version N")
    p.add_argument("--backwards", action="store_true", help="newest first")
    p.set_defaults(handler=show)
    p = actions.add_parser("tail", parents=[common], help="print a category from a position")
    p.add_argument("category", metavar="CATEGORY", help="e.g. order (streams order-*)")
    p.add_argument(
        "--from",
        dest="from_position",
        type=int,
        default=0,
        metavar="POS",
        help="print the events after position POS (default 0: from the start)",
    )
    p.add_argument("--follow", action="store_true", help="keep printing new events")
    p.add_argument("--interval", type=float, default=0.5, help="--follow poll interval (s)")
    p.add_argument("--member", type=int, default=0, help="consumer-group member (0-based)")
    p.add_argument("--size", type=int, default=1, help="consumer-group size")
    p.set_defaults(handler=tail)
    p = actions.add_parser("count", parents=[common], help="count events per type")
    p.add_argument("--category", metavar="C", help="only streams C-* (default: all)")
    p.set_defaults(handler=count)
    for name, action in actions.choices.items():
        action.add_argument(
            "--store",
            metavar="URL",
            help="postgresql://... or sqlite:///PATH "
            "(default: $STRANGLER_EVENT_STORE, else sqlite:///./events.db)",
        )
        action.add_argument(
            "--progress",
            type=int,
            default=PROGRESS_EVERY,
            metavar="N",
            help=f"report progress on stderr every N events (0: never; default {PROGRESS_EVERY})",
        )
        if name != "count":
            action.add_argument("--format", choices=("text", "json"), default="text")
        action.set_defaults(needs_config=False, no_config=True)
