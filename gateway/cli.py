"""The ``strangler`` command line: argument parsing and dispatch only.

Exit codes: 0 success, 1 a check found a difference or an operation failed, 2 invalid
input (configuration or arguments).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from gateway.config import Config, ConfigError, load_file

EXIT_OK, EXIT_DIFF, EXIT_INVALID = 0, 1, 2
DISTRIBUTION = "strangler-gateway"

Handler = Callable[[argparse.Namespace], int]


def _config_path(args: argparse.Namespace) -> str:
    return str(args.config or os.environ.get("STRANGLER_CONFIG") or "routes.yaml")


def load_or_report(args: argparse.Namespace) -> Config | None:
    """Load the configuration, printing every problem to stderr when it is invalid."""
    try:
        return load_file(_config_path(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    if args.schema:
        from gateway.config.spec import json_schema

        print(json.dumps(json_schema(), indent=2))
        return EXIT_OK
    config = load_or_report(args)
    if config is None:
        return EXIT_INVALID
    print(
        f"{config.source}: ok ({len(config.routes)} routes, {len(config.backends)} backends)",
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return EXIT_INVALID
    from gateway.runtime.supervisor import serve

    return serve(config, workers=args.workers, config_path=_config_path(args))


DEMO_NEEDS_CHECKOUT = "the demo runs from a source checkout: make demo"


def _demo_module() -> ModuleType | None:
    """examples.demo when it can be imported (a source checkout), else None."""
    try:
        return importlib.import_module("examples.demo")
    except ModuleNotFoundError as exc:
        if exc.name in ("examples", "examples.demo"):
            return None
        raise


def cmd_demo(args: argparse.Namespace) -> int:
    demo = _demo_module()
    if demo is None:
        print(f"strangler demo: {DEMO_NEEDS_CHECKOUT}", file=sys.stderr)
        return EXIT_INVALID
    result: int = demo.main(["-c", _config_path(args)])
    return result


def version() -> str:
    """The installed distribution's version, else the one in the checkout's pyproject.toml."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        with pyproject.open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="routes.yaml to use (default: $STRANGLER_CONFIG, else ./routes.yaml)",
    )
    parser = argparse.ArgumentParser(
        prog="strangler",
        description="Strangler-fig migration gateway: shift traffic, capture legacy writes "
        "as events, compare shadow responses, render Istio manifests.",
    )
    parser.add_argument("--version", action="version", version=f"strangler {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", parents=[common], help="run the gateway")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("validate", parents=[common], help="check routes.yaml; exit 2 if invalid")
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of routes.yaml")
    p.set_defaults(handler=cmd_validate)

    from gateway.capture import cli as outbox_cli

    outbox_cli.add_commands(sub, common)
    from shadow import cli as shadow_cli

    shadow_cli.add_commands(sub, common)
    from gateway.istio import cli as istio_cli
    from gateway.rollout import cli as rollout_cli

    # the two stay independent: each gets the other's part it needs from here
    istio_cli.add_commands(sub, common, live_weights=rollout_cli.live_weights)
    rollout_cli.add_commands(sub, common, mesh=istio_cli.write_virtual_services)
    from strangler_events import cli as events_cli

    events_cli.add_commands(sub, common)
    from strangler_events.eventstore import cli as eventstore_cli

    eventstore_cli.add_commands(sub, common)
    from strangler_events.saga import cli as saga_cli

    saga_cli.add_commands(sub, common)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="run the demo (from a source checkout): the example monolith behind the gateway",
    )
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "needs_config"):
        # Commands that take --dsn, --store or --bootstrap need routes.yaml only when none
        # is given; some never do.
        config = None
        given = any(getattr(args, k, None) for k in ("dsn", "store", "bootstrap", "no_config"))
        if args.needs_config or not given:
            config = load_or_report(args)
            if config is None:
                return EXIT_INVALID
        result: int = args.handler(args, config)
        return result
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
