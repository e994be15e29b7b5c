"""An Istio VirtualService (plus, optionally, its DestinationRules) -> a routes.yaml
document, for the subset of Istio the gateway supports (pure).

Each ``http`` entry becomes a route (one per ``match`` element when there are
several, since a route has one match), in order.  The pair ``exact: /p`` +
``prefix: /p/`` that :mod:`gateway.istio.render` renders for a segment-aware prefix comes
back as one ``prefix: /p``; any other ``prefix`` is imported as ``prefix_mode: raw``
(Istio's plain string prefix).  Destinations become backends named after their
subset (else the host's first label), with ``kubernetes`` host, port and subset;
``mirror`` becomes ``shadow``; ``timeout`` and ``retries`` carry over.

Anything else (fault injection, rewrites, redirects, header manipulation, CORS,
delegation, TCP/TLS routes, ...) is refused with an :class:`ImportError_` naming
each unsupported field by its path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gateway.config.spec import RETRY_ON

Obj = dict[str, Any]

SUPPORTED_HTTP = {"name", "match", "route", "timeout", "retries", "mirror", "mirrorPercentage"}
SUPPORTED_MATCH = {"name", "uri", "method", "headers", "withoutHeaders", "queryParams"}
SUPPORTED_SPEC = {"hosts", "gateways", "http", "exportTo"}
EXPLAIN = {
    "fault": "fault injection is not supported",
    "rewrite": "URI/authority rewrite is not supported",
    "redirect": "redirects are not supported",
    "directResponse": "direct responses are not supported",
    "headers": "header manipulation is not supported",
    "corsPolicy": "CORS policy is not supported",
    "delegate": "delegation is not supported",
    "tcp": "TCP routes are not supported",
    "tls": "TLS routes are not supported",
    "mirrors": "several mirrors are not supported (one mirror is)",
}


class ImportError_(Exception):  # noqa: N801 - not the builtin ImportError
    """The VirtualService uses what the gateway cannot do; ``problems`` names each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class _State:
    problems: list[str] = field(default_factory=list)
    backends: dict[str, Obj] = field(default_factory=dict)
    by_destination: dict[tuple[str, int, str | None], str] = field(default_factory=dict)
    subsets: dict[str, set[str]] | None = None

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


def _name(text: str) -> str:
    """A routes.yaml name (lower-case letters, digits and '-') from ``text``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _seconds(text: Any, where: str, state: _State) -> str | None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text))
    if match is None:
        state.bad(where, f"expected a duration such as 10s or 250ms, got {text!r}")
        return None
    return f"{match.group(1)}{match.group(2)}"


def _string(spec: Obj, where: str, state: _State, allow_prefix: bool = False) -> Obj | None:
    if not isinstance(spec, dict):
        state.bad(where, f"expected a string match, got {spec!r}")
        return None
    if not spec:
        return {"present": True}
    for key in spec:
        if key == "exact":
            return {"exact": str(spec[key])}
        if key == "regex":
            return {"regex": str(spec[key])}
        if key == "prefix" and allow_prefix:
            return {"prefix": str(spec[key])}
    state.bad(where, f"unsupported string match {sorted(spec)} (exact, regex or {{}} only)")
    return None


def _backend(dest: Obj, where: str, state: _State) -> str | None:
    host = dest.get("host")
    if not isinstance(host, str):
        state.bad(f"{where}.host", "missing")
        return None
    port = int((dest.get("port") or {}).get("number", 80))
    subset = dest.get("subset")
    if subset is not None and state.subsets is not None:
        if subset not in _known_subsets(state.subsets, host):
            state.bad(
                f"{where}.subset",
                f"subset {subset!r} of {host} is not defined in the DestinationRules",
            )
    key = (host, port, subset)
    if key in state.by_destination:
        return state.by_destination[key]
    base = _name(subset if subset else host.split(".")[0])
    name = base
    if name in state.backends:
        name = base = _name(f"{host.split('.')[0]}-{base}")
    n = 2
    while name in state.backends:
        name = f"{base}-{n}"
        n += 1
    kube: Obj = {"host": host, "port": port}
    if subset is not None:
        kube["subset"] = subset
    state.backends[name] = {"url": f"http://{host}:{port}", "kubernetes": kube}
    state.by_destination[key] = name
    return name


def _known_subsets(subsets: dict[str, set[str]], host: str) -> set[str]:
    """Subsets defined for ``host``; a short name (``reviews``) and its cluster name
    (``reviews.ns.svc.cluster.local``) are the same host, as Istio resolves them."""
    if host in subsets:
        return subsets[host]
    short = host.split(".")[0]
    out: set[str] = set()
    for name, names in subsets.items():
        if ("." not in name or "." not in host) and name.split(".")[0] == short:
            out |= names
    return out


def _method(spec: Obj, where: str, state: _State) -> list[str] | None:
    if "exact" in spec:
        return [str(spec["exact"]).upper()]
    if "regex" in spec and re.fullmatch(r"[A-Z]+(\|[A-Z]+)*", str(spec["regex"])):
        return str(spec["regex"]).split("|")
    state.bad(where, "only exact methods or an alternation like GET|HEAD are supported")
    return None


def _match(entry: Obj, where: str, state: _State) -> Obj:
    out: Obj = {}
    for key in entry:
        if key not in SUPPORTED_MATCH:
            state.bad(f"{where}.{key}", "matching on this field is not supported")
    uri = entry.get("uri")
    if uri is not None:
        parsed = _string(uri, f"{where}.uri", state, allow_prefix=True)
        if parsed is not None:
            if "prefix" in parsed:
                out["prefix"] = parsed["prefix"]
                out["prefix_mode"] = "raw"
            elif "exact" in parsed:
                out["exact"] = parsed["exact"]
            elif "regex" in parsed:
                out["regex"] = parsed["regex"]
            else:
                state.bad(f"{where}.uri", "an empty uri match is not supported")
    if "method" in entry:
        methods = _method(entry["method"], f"{where}.method", state)
        if methods:
            out["methods"] = methods
    headers: Obj = {}
    for name, spec in (entry.get("headers") or {}).items():
        parsed = _string(spec, f"{where}.headers.{name}", state)
        if parsed is not None:
            headers[name.lower()] = parsed
    for name, spec in (entry.get("withoutHeaders") or {}).items():
        if spec:
            state.bad(f"{where}.withoutHeaders.{name}", "only {} (header absent) is supported")
        headers[name.lower()] = {"absent": True}
    if headers:
        out["headers"] = headers
    query: Obj = {}
    for name, spec in (entry.get("queryParams") or {}).items():
        parsed = _string(spec, f"{where}.queryParams.{name}", state)
        if parsed is not None:
            query[name] = parsed
    if query:
        out["query"] = query
    return out


def _merge_segment_prefix(matches: list[Obj]) -> list[Obj]:
    """``exact: /p`` + ``prefix: /p/`` with the same other conditions -> ``prefix: /p``."""
    out: list[Obj] = []
    skip: set[int] = set()
    for i, m in enumerate(matches):
        if i in skip:
            continue
        if "exact" in m and i + 1 < len(matches):
            nxt = matches[i + 1]
            rest = {k: v for k, v in m.items() if k != "exact"}
            nrest = {k: v for k, v in nxt.items() if k not in ("prefix", "prefix_mode")}
            if nxt.get("prefix") == m["exact"] + "/" and rest == nrest:
                out.append({"prefix": m["exact"], **rest})
                skip.add(i + 1)
                continue
        out.append(m)
    return out


def _http(entry: Obj, i: int, state: _State) -> list[Obj]:
    where = f"http[{i}]"
    for key in entry:
        if key not in SUPPORTED_HTTP:
            state.bad(f"{where}.{key}", EXPLAIN.get(key, "not supported"))
    name = _name(str(entry.get("name") or f"route-{i}"))
    split: Obj = {}
    routes = entry.get("route") or []
    if not routes:
        state.bad(f"{where}.route", "missing: every entry needs at least one destination")
    for j, r in enumerate(routes):
        for key in r:
            if key not in ("destination", "weight"):
                state.bad(f"{where}.route[{j}].{key}", EXPLAIN.get(key, "not supported"))
        backend = _backend(r.get("destination") or {}, f"{where}.route[{j}].destination", state)
        if backend is not None:
            weight = int(r.get("weight", 100 if len(routes) == 1 else 0))
            split[backend] = split.get(backend, 0) + weight
    route: Obj = {"name": name, "split": split}
    if "timeout" in entry:
        route["timeout"] = _seconds(entry["timeout"], f"{where}.timeout", state)
    if "retries" in entry:
        retries = entry["retries"] or {}
        out: Obj = {"attempts": int(retries.get("attempts", 2))}
        if "perTryTimeout" in retries:
            out["per_try_timeout"] = _seconds(
                retries["perTryTimeout"], f"{where}.retries.perTryTimeout", state
            )
        if "retryOn" in retries:
            conditions = [c.strip() for c in str(retries["retryOn"]).split(",") if c.strip()]
            unknown = [c for c in conditions if c not in RETRY_ON]
            if unknown:
                state.bad(f"{where}.retries.retryOn", f"unsupported conditions {unknown}")
            out["on"] = [c for c in conditions if c in RETRY_ON]
        for key in retries:
            if key not in ("attempts", "perTryTimeout", "retryOn"):
                state.bad(f"{where}.retries.{key}", "not supported")
        route["retries"] = out
    if "mirror" in entry:
        backend = _backend(entry["mirror"], f"{where}.mirror", state)
        percent = float((entry.get("mirrorPercentage") or {}).get("value", 100.0))
        if backend is not None:
            route["shadow"] = {"backend": backend, "percent": percent}
    matches = [
        _match(m, f"{where}.match[{k}]", state) for k, m in enumerate(entry.get("match") or [])
    ]
    matches = _merge_segment_prefix(matches)
    if not matches:
        return [route]
    if len(matches) == 1:
        return [{**route, "match": matches[0]} if matches[0] else route]
    return [{**route, "name": f"{name}-{k + 1}", "match": m} for k, m in enumerate(matches)]


def _subsets(rules: list[Obj]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rule in rules:
        spec = rule.get("spec") or {}
        host = spec.get("host")
        if host:
            out.setdefault(host, set()).update(s["name"] for s in spec.get("subsets") or [])
    return out


def import_virtual_service(vs: Obj, destination_rules: list[Obj] | None = None) -> Obj:
    """A routes.yaml document (as a dict) for ``vs``; raises :class:`ImportError_`."""
    state = _State(subsets=_subsets(destination_rules) if destination_rules is not None else None)
    if vs.get("kind") != "VirtualService":
        raise ImportError_([f"kind: expected VirtualService, got {vs.get('kind')!r}"])
    spec = vs.get("spec") or {}
    for key in spec:
        if key not in SUPPORTED_SPEC:
            state.bad(f"spec.{key}", EXPLAIN.get(key, "not supported"))
    routes: list[Obj] = []
    for i, entry in enumerate(spec.get("http") or []):
        routes += _http(entry, i, state)
    if not routes:
        state.bad("spec.http", "no HTTP routes to import")
    seen: dict[str, int] = {}
    for route in routes:  # route names must be unique
        n = seen.get(route["name"], 0)
        seen[route["name"]] = n + 1
        if n:
            route["name"] = f"{route['name']}-{n + 1}"
    if state.problems:
        raise ImportError_(state.problems)
    istio: Obj = {"hosts": list(spec.get("hosts") or ["*"])}
    gateways = [g for g in spec.get("gateways") or [] if g != "mesh"]
    if gateways:
        istio["gateways"] = gateways
    if "mesh" in (spec.get("gateways") or []):
        istio["mesh"] = True
    namespace = (vs.get("metadata") or {}).get("namespace")
    if namespace:
        istio["namespace"] = namespace
    return {"version": 1, "backends": state.backends, "routes": routes, "istio": istio}
