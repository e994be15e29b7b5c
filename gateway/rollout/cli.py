"""``strangler rollout status [ROUTE] | start | pause | resume | approve | abort ROUTE``.

Each command talks to the running gateway's admin API (the address in routes.yaml, or
``--admin URL``), sending the admin token from the variable ``admin.token_env`` names.
With ``--mesh-out DIR`` it then writes the VirtualServices carrying every rollout's
weight into DIR (for GitOps), through the mesh writer the command line wires in.

:func:`live_weights` reads the weights the rollout store holds now, for ``strangler
istio render``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.rollout.machine import PENDING
from gateway.rollout.store import StoreError, open_store, weights_of
from gateway.rollout.weights import Weights, with_weights

ACTIONS = ("start", "pause", "resume", "approve", "abort")
MESH_ACTIONS = ("status", "start", "approve", "resume", "abort")  # pause moves no weight
TIMEOUT = 10.0

#: Writes the VirtualServices of a configuration into a directory; the files written.
#: Raises ValueError (cannot be rendered) or OSError.
MeshWriter = Callable[[Config, Path], list[Path]]


class AdminError(Exception):
    """The admin API refused the call or could not be reached."""


def admin_url(config: Config, given: str | None) -> str:
    if given:
        return given.rstrip("/")
    host, port = config.admin_listen
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def call(base: str, method: str, path: str, token: str | None) -> Any:
    """One admin API call; its JSON answer, else :class:`AdminError` with the API's error."""
    request = urllib.request.Request(base + path, method=method)
    if method == "POST":  # the admin API's cross-site rule: JSON or no body, never a form
        request.data = b"{}"
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            error = exc.reason
        raise AdminError(f"{method} {path}: {exc.code} {error}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise AdminError(f"cannot reach the admin API at {base}: {exc}") from None


def describe(rollout: dict[str, Any]) -> str:
    """A rollout as a few lines of text: phase, weight, steps and each judged window."""
    lines = [
        f"{rollout['route']}: {rollout['phase']}  {rollout['backend']} at {rollout['weight']}%"
        f"  (step {rollout['step'] + 1} of {len(rollout['steps'])}: {rollout['steps']})"
    ]
    if rollout["reason"]:
        lines.append(f"  reason: {rollout['reason']}")
    for verdict in rollout["history"]:
        ev = verdict["evidence"]
        lines.append(
            f"  step {verdict['step'] + 1} at {verdict['weight']}%: {verdict['outcome']}"
            f"  requests {ev['requests']} 5xx {ev['errors']} p99 {ev['p99']}"
            f" shadow {ev['matched']}/{ev['compared']}"
            + (f"  {verdict['reason']}" if verdict["reason"] else "")
        )
    return "\n".join(lines)


async def _stored_weights(url: str) -> Weights:
    store = open_store(url)
    try:
        await store.init()
        states = await store.all()
    finally:
        await store.close()
    return weights_of(state for state, _ in states.values())


def live_weights(config: Config) -> Config:
    """``config`` with the weights its rollout store holds now; unchanged when no route
    has a ``rollout:`` block.  ValueError names the store when it cannot be read."""
    if not any(route.rollout for route in config.routes):
        return config
    try:
        weights = asyncio.run(_stored_weights(config.rollout_store_url))
    except StoreError as exc:
        raise ValueError(f"rollout store {config.rollout_store_url}: {exc}") from None
    return with_weights(config, weights)


def answered_weights(rollouts: list[dict[str, Any]]) -> Weights:
    """Route -> (new backend, weight) from the admin API's rollouts, as the store has them."""
    return {r["route"]: (r["backend"], r["weight"]) for r in rollouts if r["phase"] != PENDING}


def write_mesh(args: argparse.Namespace, config: Config, base: str, token: str | None) -> int:
    """Write every route's VirtualService with the weights the gateway has now."""
    try:
        rollouts = call(base, "GET", "/admin/rollout", token)["rollouts"]
        written = args.mesh(with_weights(config, answered_weights(rollouts)), Path(args.mesh_out))
    except (AdminError, ValueError, OSError) as exc:
        where = f"strangler rollout {args.action} --mesh-out {args.mesh_out}"
        print(f"{where}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def rollout_cmd(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    token = os.environ.get(config.admin_token_env) if config.admin_token_env else None
    base = admin_url(config, args.admin)
    try:
        if args.action == "status":
            path = f"/admin/rollout/{args.route}" if args.route else "/admin/rollout"
            answer = call(base, "GET", path, token)
        else:
            answer = call(base, "POST", f"/admin/rollout/{args.route}/{args.action}", token)
    except AdminError as exc:
        print(f"strangler rollout {args.action}: {exc}", file=sys.stderr)
        return 1
    rollouts = answer["rollouts"] if "rollouts" in answer else [answer]
    if args.format == "json":
        print(json.dumps(answer, indent=2))
    else:
        print("\n".join(describe(r) for r in rollouts) or "no route has a rollout: block")
    if getattr(args, "mesh_out", None):
        return write_mesh(args, config, base, token)
    return 0


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    mesh: MeshWriter,
) -> None:
    group = sub.add_parser("rollout", help="progressive rollouts: status, start, approve...")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("status", *ACTIONS):
        p = actions.add_parser(action, parents=[common], help=f"{action} a route's rollout")
        p.add_argument("route", nargs="?" if action == "status" else None, metavar="ROUTE")
        p.add_argument("--admin", metavar="URL", help="admin API (default: admin.listen)")
        p.add_argument("--format", choices=("text", "json"), default="text")
        if action in MESH_ACTIONS:
            p.add_argument(
                "--mesh-out",
                metavar="DIR",
                help="then write each VirtualService with its current weights into DIR",
            )
        p.set_defaults(handler=rollout_cmd, needs_config=True, mesh=mesh)
