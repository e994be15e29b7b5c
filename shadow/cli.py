"""``strangler shadow report``: read stored comparison results and print the report."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time

from gateway.config import Config
from shadow.report import Thresholds, build, render
from shadow.store import DEFAULT_URL, Result, StoreError, open_store

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``7d`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match is None:
        raise ValueError(f"--since {text!r}: expected a duration such as 30m, 1h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def thresholds(config: Config | None) -> dict[str, Thresholds]:
    if config is None:
        return {}
    return {
        r.name: Thresholds(r.shadow.noise.relative_threshold, r.shadow.noise.absolute_threshold)
        for r in config.routes
        if r.shadow is not None
    }


async def load(url: str, since: float, route: str | None) -> list[Result]:
    store = open_store(url)
    try:
        return await store.results(since, route)
    finally:
        await store.close()


def report(args: argparse.Namespace, config: Config | None) -> int:
    try:
        since = time.time() - parse_since(args.since) if args.since else 0.0
    except ValueError as exc:
        print(f"strangler shadow report: {exc}", file=sys.stderr)
        return EXIT_INVALID
    url = args.store or (config.shadow_store_url if config else None) or DEFAULT_URL
    try:
        results = asyncio.run(load(url, since, args.route))
    except StoreError as exc:
        print(f"strangler shadow report: {exc}", file=sys.stderr)
        return EXIT_FAIL
    text = render(build(results, thresholds(config)), args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = sub.add_parser("shadow", help="report on shadow comparisons")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "report",
        parents=[common],
        help="per route and endpoint: compared, matched, differing fields, latency",
    )
    p.add_argument("--store", metavar="URL", help="result store (default: shadow_store.url)")
    p.add_argument("--route", help="only this route")
    p.add_argument("--since", help="only results this recent (30m, 1h, 7d)")
    p.add_argument("--format", choices=("text", "json", "html"), default="text")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(handler=report, needs_config=False)
