"""Istio's HTTP routing semantics over a rendered VirtualService (pure), to check that
the mesh routes as the gateway does.

* the first ``http`` entry that matches wins; an entry without ``match`` matches all;
* ``match`` entries are OR-ed, the fields inside one are AND-ed;
* ``uri.prefix`` is a plain string prefix of the path with its query string;
  ``uri.exact`` and ``uri.regex`` (a full match) look at the path without it;
* header names are lower-case; a string match with no field (``{}``) means present;
  ``withoutHeaders`` matches when the header is absent or does not match;
* ``queryParams`` like headers, on decoded query parameters;
* destination weights are relative to their sum; a single destination gets all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

Obj = dict[str, Any]
Destination = tuple[str, int | None, str | None]  # host, port, subset


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # normalised, without the query string
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    index: int
    name: str | None
    shares: dict[Destination, float]


def string_matches(spec: Obj, value: str | None) -> bool:
    if value is None:
        return False
    if "exact" in spec:
        return bool(value == spec["exact"])
    if "prefix" in spec:
        return value.startswith(spec["prefix"])
    if "regex" in spec:
        return re.fullmatch(spec["regex"], value) is not None
    return True  # {}: present


def _uri_matches(spec: Obj, request: Request) -> bool:
    if "prefix" in spec:
        full = request.path + ("?" + urlencode(dict(request.query)) if request.query else "")
        return full.startswith(spec["prefix"])
    return string_matches(spec, request.path)


def match_entry(entry: Obj, request: Request) -> bool:
    """One element of ``match``: every field it has must hold."""
    if "uri" in entry and not _uri_matches(entry["uri"], request):
        return False
    if "method" in entry and not string_matches(entry["method"], request.method):
        return False
    for name, spec in (entry.get("headers") or {}).items():
        if not string_matches(spec, request.headers.get(name.lower())):
            return False
    for name, spec in (entry.get("withoutHeaders") or {}).items():
        if string_matches(spec, request.headers.get(name.lower())):
            return False
    for name, spec in (entry.get("queryParams") or {}).items():
        if not string_matches(spec, request.query.get(name)):
            return False
    return True


def destination_key(destination: Obj) -> Destination:
    port = (destination.get("port") or {}).get("number")
    return destination["host"], port, destination.get("subset")


def shares(routes: list[Obj]) -> dict[Destination, float]:
    if len(routes) == 1:
        return {destination_key(routes[0]["destination"]): 1.0}
    weights = [(destination_key(r["destination"]), int(r.get("weight", 0))) for r in routes]
    total = sum(w for _, w in weights)
    out: dict[Destination, float] = {}
    for key, weight in weights:
        if weight > 0:
            out[key] = out.get(key, 0.0) + weight / total
    return out


def interpret(http: list[Obj], request: Request) -> Outcome | None:
    """Where the mesh sends ``request``; None when no entry matches (404)."""
    for i, entry in enumerate(http):
        matches = entry.get("match")
        if not matches or any(match_entry(m, request) for m in matches):
            return Outcome(i, entry.get("name"), shares(entry["route"]))
    return None
