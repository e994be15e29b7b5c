"""The checks that need the whole routes.yaml document, after its shape is known good.

:mod:`gateway.config.spec` checks each value where it stands; here we check what
values say about each other: backend references, unique route names, capture
rules that fit their route, and capture placeholders the capture rules can use.
Pure: every problem goes to the :class:`Checker`, located by field path.
"""

from __future__ import annotations

from typing import Any

from gateway.config.model import PLACEHOLDER, Match, legacy_backends, match_of, path_matches
from gateway.config.schema import Checker
from gateway.config.spec import SAFE_METHODS
from gateway.config.yamlsource import join


def cross_check(doc: dict[str, Any], ck: Checker) -> None:
    """Report every cross-reference problem of a shape-checked document."""
    backends: dict[str, Any] = doc["backends"]
    legacy = legacy_backends({name: b["legacy"] for name, b in backends.items()})
    seen: dict[str, int] = {}
    for i, route in enumerate(doc["routes"]):
        rpath = join("routes", i)
        if route["name"] in seen:
            ck.problem(
                join(rpath, "name"),
                f"duplicate route name '{route['name']}' (also routes[{seen[route['name']]}])",
            )
        seen.setdefault(route["name"], i)
        _check_route(route, rpath, backends, ck)
        if route["rollout"] is not None:
            check_rollout(route, join(rpath, "rollout"), legacy, ck)
        match = match_of(route["match"])
        for j, cap in enumerate(route["capture"]):
            cpath = join(join(rpath, "capture"), j)
            for k, name in enumerate(cap["backends"] or ()):
                _backend_ref(backends, name, join(join(cpath, "backends"), k), ck)
            if cap["backends"] is None and not legacy:
                ck.problem(
                    cpath,
                    "no backend is marked legacy: true (and none is named 'legacy'); "
                    "say which backends' writes are captured with backends: [...]",
                )
            check_capture_path(cap, match, route["name"], cpath, ck)


def _backend_ref(
    backends: dict[str, Any], name: str, path: str, ck: Checker, key: bool = False
) -> None:
    if name not in backends:
        ck.problem(path, f"unknown backend '{name}' (known: {', '.join(backends)})", key=key)


def _check_route(route: dict[str, Any], rpath: str, backends: dict[str, Any], ck: Checker) -> None:
    for name in route["split"]:
        _backend_ref(backends, name, join(join(rpath, "split"), name), ck, key=True)
    if route["split"] and all(w == 0 for w in route["split"].values()):
        ck.problem(join(rpath, "split"), "all weights are zero; at least one must be above 0")
    if route["fallback"] is not None:
        _backend_ref(backends, route["fallback"], join(rpath, "fallback"), ck)
    shadow = route["shadow"]
    if shadow is None:
        return
    spath = join(rpath, "shadow")
    _backend_ref(backends, shadow["backend"], join(spath, "backend"), ck)
    writes = sorted(set(shadow["methods"]) - set(SAFE_METHODS))
    if writes and not shadow["allow_writes"]:
        ck.problem(
            join(spath, "methods"),
            f"shadowing writes ({', '.join(writes)}) needs allow_writes: true",
        )
    for k, item in enumerate(shadow["ignore"]):
        if not (item.startswith("/") or (item.startswith("header:") and item[7:].strip())):
            ck.problem(
                join(join(spath, "ignore"), k),
                f"{item!r} is neither a JSON pointer (/a/*/b) nor header:NAME",
            )


def placeholder_problem(template: str) -> str | None:
    """Why a capture path template's placeholders are unusable, or None when they are fine."""
    names = PLACEHOLDER.findall(template)
    for name in names:
        if not (name.isascii() and name.isidentifier()):
            return (
                f"placeholder {{{name}}} in {template} is not a name "
                "(letters, digits and _, not starting with a digit)"
            )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return f"placeholder {{{twice[0]}}} appears more than once in {template}"
    return None


def check_capture_path(
    cap: dict[str, Any], match: Match, route: str, path: str, ck: Checker
) -> None:
    """A capture rule's path, method and ``path:`` id must fit its route."""
    problem = placeholder_problem(cap["path"])
    if problem is not None:
        ck.problem(join(path, "path"), problem)
    names = PLACEHOLDER.findall(cap["path"])
    source, _, arg = cap["id"].partition(":")
    if problem is None and source == "path" and arg not in names:
        ck.problem(
            join(path, "id"),
            f"'path:{arg}' names no placeholder of {cap['path']} "
            f"(has: {', '.join(names) or 'none'})",
        )
    if match.methods is not None and cap["method"] not in match.methods:
        ck.problem(
            join(path, "method"),
            f"{cap['method']} is not among route '{route}' methods "
            f"({', '.join(sorted(match.methods))})",
        )
    # A template stands for every concrete path it can produce; try a typical one.
    sample = PLACEHOLDER.sub("x1", cap["path"])
    if problem is None and not path_matches(match, sample):
        ck.problem(
            join(path, "path"),
            f"{cap['path']} is outside route '{route}' ({match.kind} {match.path})",
        )


def check_rollout(route: dict[str, Any], path: str, legacy: frozenset[str], ck: Checker) -> None:
    """A rollout steps up a new backend of its route's split, in increasing weights."""
    rollout = route["rollout"]
    backend = rollout["backend"]
    before = len(ck.problems)
    if backend not in route["split"]:
        ck.problem(
            join(path, "backend"),
            f"'{backend}' is not in route '{route['name']}' split "
            f"({', '.join(route['split'])}); a rollout moves weight between them",
        )
    elif backend in legacy or backend == route["fallback"]:
        ck.problem(
            join(path, "backend"),
            f"'{backend}' is the legacy or fallback backend; a rollout steps up a new one",
        )
    elif len(route["split"]) < 2:
        ck.problem(join(path, "backend"), "the split needs another backend to take weight from")
    previous = -1
    for i, step in enumerate(rollout["steps"]):
        if step["weight"] <= previous:
            ck.problem(
                join(join(join(path, "steps"), i), "weight"),
                f"step weights must increase: {step['weight']} follows {previous}",
            )
        previous = max(previous, step["weight"])
    shadow = route["shadow"]
    if (
        len(ck.problems) == before
        and rollout["gates"]["shadow_match"] is not None
        and (shadow is None or shadow["backend"] != backend)
    ):
        ck.problem(
            join(join(path, "gates"), "shadow_match"),
            f"the shadow_match gate needs shadow: {{backend: {backend}}} on route "
            f"'{route['name']}' (the comparisons it judges)",
        )
