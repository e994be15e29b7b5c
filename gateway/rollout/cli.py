"""``strangler rollout status [ROUTE] | start | pause | resume | approve | abort ROUTE``.

Each command talks to the running gateway's admin API (the address in routes.yaml, or
``--admin URL``), sending the admin token from the variable ``admin.token_env`` names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from gateway.config import Config

ACTIONS = ("start", "pause", "resume", "approve", "abort")
TIMEOUT = 10.0


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
    return 0


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = sub.add_parser("rollout", help="progressive rollouts: status, start, approve...")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("status", *ACTIONS):
        p = actions.add_parser(action, parents=[common], help=f"{action} a route's rollout")
        p.add_argument("route", nargs="?" if action == "status" else None, metavar="ROUTE")
        p.add_argument("--admin", metavar="URL", help="admin API (default: admin.listen)")
        p.add_argument("--format", choices=("text", "json"), default="text")
        p.set_defaults(handler=rollout_cmd, needs_config=True)
