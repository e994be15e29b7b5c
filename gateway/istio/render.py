"""routes.yaml -> Istio manifests (pure: objects in, objects out; writing files is
:mod:`gateway.istio.cli`'s job).

One VirtualService per host in ``istio.hosts`` (Istio does not guarantee the
order of several VirtualServices merged on one host), ``http`` entries in
routes.yaml order, so the first match wins in both.  A DestinationRule per
Kubernetes host carries subsets, the connection pool size and outlier detection
matching the gateway's ejection; a legacy backend outside the mesh gets a
ServiceEntry.

How the gateway's matching maps to Istio's:

* a segment-aware prefix ``/api/users`` -> two match entries, ``exact: /api/users``
  and ``prefix: /api/users/`` (a prefix ending in ``/`` is already a boundary);
  ``prefix_mode: raw`` -> a plain ``prefix``;
* methods -> ``method: {exact}`` (one) or ``method: {regex: "GET|HEAD"}``;
* headers: exact and regex as they are, ``present`` -> ``{}``, ``absent`` ->
  ``withoutHeaders``; query parameters: exact, regex, ``present`` -> ``{}``;
* the override header -> one entry per backend of the route, matching the route's
  conditions plus ``header: {exact: backend}``, placed just before the route;
* weights -> ``route[].weight``; ``timeout``; ``retries`` when configured (the
  gateway's defaults are Istio's); ``shadow`` -> ``mirror`` + ``mirrorPercentage``.

What Istio cannot express is returned as warnings and written into the
``strangler.dev/not-in-mesh`` annotation of the VirtualService.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Backend, Config, Match, Route, ValueMatch

API = "networking.istio.io/v1"
ANNOTATION = "strangler.dev/not-in-mesh"

Obj = dict[str, Any]


class RenderError(Exception):
    """The configuration cannot be rendered; ``problems`` names each reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Rendered:
    objects: list[Obj] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def named(self) -> list[tuple[str, Obj]]:
        """``(file name, object)`` for each object, e.g. ``virtualservice-api.yaml``."""
        return [(f"{o['kind'].lower()}-{o['metadata']['name']}.yaml", o) for o in self.objects]


def dns_name(text: str) -> str:
    """A DNS-1123 label from ``text`` (``api.example.com`` -> ``api-example-com``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].rstrip("-") or "default"


def duration(seconds: float) -> str:
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def destination(backend: Backend) -> Obj:
    assert backend.k8s_host is not None
    out: Obj = {"host": backend.k8s_host, "port": {"number": backend.k8s_port}}
    if backend.k8s_subset:
        out["subset"] = backend.k8s_subset
    return out


def _string_match(want: ValueMatch) -> Obj:
    if want.exact is not None:
        return {"exact": want.exact}
    if want.regex is not None:
        return {"regex": want.regex.pattern}
    return {}  # presence


def _present(want: ValueMatch) -> bool:
    """Whether ``want`` asks for presence (as opposed to absence)."""
    if want.absent is not None:
        return not want.absent
    if want.present is not None:
        return want.present
    return True


def _uris(match: Match) -> list[Obj | None]:
    if match.kind == "exact":
        return [{"exact": match.path}]
    if match.kind == "regex":
        return [{"regex": match.path}]
    prefix = match.path
    if match.prefix_mode == "raw" or prefix.endswith("/"):
        return [{"prefix": prefix}] if prefix != "/" else [None]
    return [{"exact": prefix}, {"prefix": prefix + "/"}]


def http_matches(
    match: Match, route: str, warnings: list[str], extra_headers: Obj | None = None
) -> list[Obj]:
    """The ``match`` list of an ``http`` entry (OR of entries, AND inside one)."""
    common: Obj = {}
    if match.methods is not None:
        methods = sorted(match.methods)
        common["method"] = (
            {"exact": methods[0]} if len(methods) == 1 else {"regex": "|".join(methods)}
        )
    headers: Obj = {}
    without: Obj = {}
    for name, want in match.headers:
        if _present(want):
            headers[name.lower()] = _string_match(want)
        else:
            without[name.lower()] = {}
    if extra_headers:
        headers.update(extra_headers)
    if headers:
        common["headers"] = headers
    if without:
        common["withoutHeaders"] = without
    query: Obj = {}
    for name, want in match.query:
        if _present(want):
            query[name] = _string_match(want)
        else:
            warnings.append(
                f"route {route}: query parameter {name!r} must be absent: Istio cannot match "
                "absence of a query parameter; the mesh ignores that condition"
            )
    if query:
        common["queryParams"] = query
    out = []
    for uri in _uris(match):
        entry = dict(common)
        if uri is not None:
            entry = {"uri": uri, **entry}
        out.append(entry)
    if out == [{}]:
        return []
    return out


def _weighted(config: Config, route: Route) -> list[Obj]:
    live = [(n, w) for n, w in route.split if w > 0]
    if len(live) == 1:
        return [{"destination": destination(config.backends[live[0][0]])}]
    return [{"destination": destination(config.backends[n]), "weight": w} for n, w in live]


def _policies(route: Route, config: Config) -> Obj:
    out: Obj = {}
    if route.timeout is not None:
        out["timeout"] = duration(route.timeout)
    if route.retries_configured:
        retries: Obj = {"attempts": route.retries.attempts}
        if route.retries.per_try_timeout is not None:
            retries["perTryTimeout"] = duration(route.retries.per_try_timeout)
        retries["retryOn"] = ",".join(sorted(route.retries.on))  # Istio's names are ours
        out["retries"] = retries
    if route.shadow is not None:
        out["mirror"] = destination(config.backends[route.shadow.backend])
        out["mirrorPercentage"] = {"value": float(route.shadow.percent)}
    return out


def _limits(route: Route) -> list[str]:
    """What this route does that the mesh will not."""
    out = []
    if route.sticky_header or route.sticky_cookie:
        key = route.sticky_header or f"cookie {route.sticky_cookie}"
        out.append(f"route {route.name}: sticky split by {key} (the mesh draws per request)")
    if route.fallback is not None:
        out.append(f"route {route.name}: per-request fallback to {route.fallback}")
    if route.shadow is not None:
        out.append(f"route {route.name}: shadow response comparison (the mesh only mirrors)")
    if route.capture:
        out.append(f"route {route.name}: capture of writes into the outbox")
    if route.max_body_bytes is not None:
        out.append(f"route {route.name}: request body limit")
    return out


def http_routes(config: Config, warnings: list[str]) -> list[Obj]:
    entries: list[Obj] = []
    for route in config.routes:
        warnings.extend(_limits(route))
        policies = _policies(route, config)
        if route.override_header:
            header = route.override_header.lower()
            if any(name.lower() == header for name, _ in route.match.headers):
                warnings.append(
                    f"route {route.name}: override header {header!r} is also a match condition; "
                    "the override is not rendered"
                )
            else:
                for name, _ in route.split:
                    forced = http_matches(route.match, route.name, [], {header: {"exact": name}})
                    forced_policies = dict(policies)
                    if route.shadow is not None and route.shadow.backend == name:
                        # never mirror onto the backend that serves the request
                        forced_policies.pop("mirror", None)
                        forced_policies.pop("mirrorPercentage", None)
                    entries.append(
                        {
                            "name": f"{route.name}--override-{name}",
                            "match": forced,
                            "route": [{"destination": destination(config.backends[name])}],
                            **forced_policies,
                        }
                    )
        entry: Obj = {"name": route.name}
        matches = http_matches(route.match, route.name, warnings)
        if matches:
            entry["match"] = matches
        entry["route"] = _weighted(config, route)
        entry.update(policies)
        entries.append(entry)
    return entries


def _missing_kubernetes(config: Config) -> list[str]:
    used: set[str] = set()
    for route in config.routes:
        used.update(n for n, _ in route.split)
        if route.shadow is not None:
            used.add(route.shadow.backend)
    return [
        f"backends.{name}: no kubernetes host; istio render needs backends.{name}.kubernetes.host"
        for name in sorted(used)
        if config.backends[name].k8s_host is None
    ]


def _destination_rules(config: Config, namespace: str) -> list[Obj]:
    by_host: dict[str, list[Backend]] = {}
    for backend in config.backends.values():
        if backend.k8s_host is not None:
            by_host.setdefault(backend.k8s_host, []).append(backend)
    out = []
    for host, backends in sorted(by_host.items()):
        policy: Obj = {
            "connectionPool": {"tcp": {"maxConnections": max(b.pool_size for b in backends)}}
        }
        outlier = next((b.outlier for b in backends if b.outlier is not None), None)
        if outlier is not None:
            policy["outlierDetection"] = {
                "consecutiveGatewayErrors": outlier.consecutive_failures,
                "interval": "10s",
                "baseEjectionTime": duration(outlier.base_ejection),
                "maxEjectionPercent": outlier.max_ejected_percent,
            }
        spec: Obj = {"host": host, "trafficPolicy": policy}
        subsets = sorted({b.k8s_subset for b in backends if b.k8s_subset})
        if subsets:
            spec["subsets"] = [{"name": s, "labels": {"version": s}} for s in subsets]
        out.append(_object("DestinationRule", dns_name(host), namespace, spec))
    return out


def _service_entries(config: Config, namespace: str) -> list[Obj]:
    out = []
    for backend in config.backends.values():
        if backend.legacy and backend.k8s_host is not None:
            spec = {
                "hosts": [backend.k8s_host],
                "location": "MESH_EXTERNAL",
                "resolution": "DNS",
                "ports": [{"number": backend.k8s_port, "name": "http", "protocol": "HTTP"}],
            }
            out.append(_object("ServiceEntry", dns_name(backend.name), namespace, spec))
    return out


def _object(kind: str, name: str, namespace: str, spec: Obj, annotations: Obj | None = None) -> Obj:
    metadata: Obj = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": API, "kind": kind, "metadata": metadata, "spec": spec}


def render(config: Config) -> Rendered:
    """The Istio objects for ``config`` and what they cannot express."""
    istio = config.istio
    if istio is None:
        raise RenderError(["istio: missing; add istio: {hosts: [...]} to routes.yaml"])
    problems = _missing_kubernetes(config)
    if problems:
        raise RenderError(problems)
    namespace = istio["namespace"]
    warnings: list[str] = []
    http = http_routes(config, warnings)
    warnings = list(dict.fromkeys(warnings))
    gateways = list(istio["gateways"]) + (["mesh"] if istio["mesh"] else [])
    result = Rendered(warnings=warnings)
    for host in istio["hosts"]:
        spec: Obj = {"hosts": [host]}
        if gateways:
            spec["gateways"] = gateways
        spec["http"] = http
        annotations = {ANNOTATION: "\n".join(warnings)} if warnings else None
        vs = _object("VirtualService", dns_name(host), namespace, spec, annotations)
        result.objects.append(vs)
    result.objects += _destination_rules(config, namespace)
    result.objects += _service_entries(config, namespace)
    return result
