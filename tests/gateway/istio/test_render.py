"""Rendering routes.yaml to Istio: shapes, warnings, Istio's own schemas, and a property
test that the mesh (interpreted) routes every request as the gateway does."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from cloudcoil.models.istio.networking import v1 as istio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Config, parse
from gateway.istio.render import ANNOTATION, RenderError, render
from gateway.proxy.routing import Facts, Table
from tests.gateway.istio.interpreter import Request, interpret

BACKENDS = """\
backends:
  legacy: {url: "http://127.0.0.1:9001", legacy: true,
           kubernetes: {host: monolith.legacy.svc.cluster.local, port: 8080}}
  users-v2: {url: "http://127.0.0.1:9002", kubernetes: {host: users.users.svc.cluster.local},
             outlier: {consecutive_failures: 3, base_ejection: 15s, max_ejected_percent: 50},
             pool_size: 64}
  orders-v2: {url: "http://127.0.0.1:9003",
              kubernetes: {host: orders.orders.svc.cluster.local, subset: v2}}
"""

EXAMPLE = (
    "version: 1\n"
    + BACKENDS
    + """\
routes:
  - name: users
    match: {prefix: /api/users, methods: [GET, HEAD], headers: {x-beta: {present: true},
            x-bot: {absent: true}}, query: {view: full}}
    split: {users-v2: 20, legacy: 80}
    sticky: {header: x-user-id}
    override: {header: x-strangler-backend}
    fallback: legacy
    retries: {attempts: 3, per_try_timeout: 2s, on: [connect-failure, "503"]}
    timeout: 10s
    shadow: {backend: users-v2, percent: 10}
  - name: raw
    match: {prefix: /static, prefix_mode: raw}
    split: {legacy: 100}
  - name: orders
    match: {regex: "/api/orders/[0-9]+", headers: {x-tenant: {regex: "t-[a-z]+"}}}
    split: {orders-v2: 1, legacy: 3}
  - name: default
    split: {legacy: 100}
istio: {hosts: [api.example.com, api.internal], gateways: [istio-system/public], mesh: true,
        namespace: shop}
"""
)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_one_virtual_service_per_host_in_route_order() -> None:
    out = render(parse(EXAMPLE))
    services = by_kind(out.objects, "VirtualService")
    assert [s["spec"]["hosts"] for s in services] == [["api.example.com"], ["api.internal"]]
    assert services[0]["metadata"]["namespace"] == "shop"
    assert services[0]["spec"]["gateways"] == ["istio-system/public", "mesh"]
    names = [h["name"] for h in services[0]["spec"]["http"]]
    assert names == [
        "users--override-users-v2",
        "users--override-legacy",
        "users",
        "raw",
        "orders",
        "default",
    ]


def test_matches_weights_and_policies() -> None:
    http = by_kind(render(parse(EXAMPLE)).objects, "VirtualService")[0]["spec"]["http"]
    users = http[2]
    common = {
        "method": {"regex": "GET|HEAD"},
        "headers": {"x-beta": {}},
        "withoutHeaders": {"x-bot": {}},
        "queryParams": {"view": {"exact": "full"}},
    }
    assert users["match"] == [
        {"uri": {"exact": "/api/users"}, **common},
        {"uri": {"prefix": "/api/users/"}, **common},
    ]
    assert users["route"] == [
        {
            "destination": {"host": "users.users.svc.cluster.local", "port": {"number": 80}},
            "weight": 20,
        },
        {
            "destination": {"host": "monolith.legacy.svc.cluster.local", "port": {"number": 8080}},
            "weight": 80,
        },
    ]
    assert users["timeout"] == "10s"
    assert users["retries"] == {
        "attempts": 3,
        "perTryTimeout": "2s",
        "retryOn": "503,connect-failure",
    }
    assert users["mirror"]["host"] == "users.users.svc.cluster.local"
    assert users["mirrorPercentage"] == {"value": 10.0}
    forced = http[0]
    assert forced["match"][0]["headers"] == {
        "x-beta": {},
        "x-strangler-backend": {"exact": "users-v2"},
    }
    assert "mirror" not in forced  # never mirror onto the backend that serves
    assert "mirror" in http[1]
    assert http[3]["match"] == [{"uri": {"prefix": "/static"}}]
    assert http[4]["match"][0]["uri"] == {"regex": "/api/orders/[0-9]+"}
    assert http[4]["match"][0]["headers"] == {"x-tenant": {"regex": "t-[a-z]+"}}
    assert http[4]["route"][0]["destination"]["subset"] == "v2"
    assert "match" not in http[5] and "retries" not in http[5]


def test_destination_rules_and_service_entry() -> None:
    objects = render(parse(EXAMPLE)).objects
    rules = {r["spec"]["host"]: r["spec"] for r in by_kind(objects, "DestinationRule")}
    users = rules["users.users.svc.cluster.local"]["trafficPolicy"]
    assert users["connectionPool"] == {"tcp": {"maxConnections": 64}}
    assert users["outlierDetection"] == {
        "consecutiveGatewayErrors": 3,
        "interval": "10s",
        "baseEjectionTime": "15s",
        "maxEjectionPercent": 50,
    }
    assert rules["orders.orders.svc.cluster.local"]["subsets"] == [
        {"name": "v2", "labels": {"version": "v2"}}
    ]
    [entry] = by_kind(objects, "ServiceEntry")
    assert entry["spec"]["hosts"] == ["monolith.legacy.svc.cluster.local"]
    assert entry["spec"]["location"] == "MESH_EXTERNAL"


def test_what_the_mesh_cannot_do_is_said_and_annotated() -> None:
    out = render(parse(EXAMPLE))
    assert out.warnings == [
        "route users: sticky split by x-user-id (the mesh draws per request)",
        "route users: per-request fallback to legacy",
        "route users: shadow response comparison (the mesh only mirrors)",
    ]
    vs = by_kind(out.objects, "VirtualService")[0]
    assert vs["metadata"]["annotations"][ANNOTATION] == "\n".join(out.warnings)
    absent_query = EXAMPLE.replace("query: {view: full}", "query: {view: {absent: true}}")
    warnings = render(parse(absent_query)).warnings
    assert any("query parameter 'view' must be absent" in w for w in warnings)


def test_render_needs_kubernetes_hosts_and_an_istio_block() -> None:
    text = EXAMPLE.replace(
        "kubernetes: {host: users.users.svc.cluster.local}", "timeouts: {connect: 1s}"
    )
    with pytest.raises(RenderError) as info:
        render(parse(text))
    assert info.value.problems == [
        "backends.users-v2: no kubernetes host; istio render needs "
        "backends.users-v2.kubernetes.host"
    ]
    without = EXAMPLE[: EXAMPLE.index("istio:")]
    with pytest.raises(RenderError, match="istio: missing"):
        render(parse(without))


MODELS: dict[str, Any] = {
    "VirtualService": istio.VirtualService,
    "DestinationRule": istio.DestinationRule,
    "ServiceEntry": istio.ServiceEntry,
}


def validate(obj: dict[str, Any]) -> None:
    """Validate with models generated from Istio's CRDs; they drop unknown keys, so the
    round trip must give back exactly what was rendered."""
    model = MODELS[obj["kind"]].model_validate(obj)
    again = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert again == obj


VARIANTS = [
    EXAMPLE,
    EXAMPLE.replace("mesh: true,", ""),
    EXAMPLE.replace("sticky: {header: x-user-id}", "sticky: {cookie: uid}"),
    "version: 1\n" + BACKENDS + "routes:\n  - {name: all, split: {legacy: 100}}\n"
    "istio: {hosts: [a.example.com]}\n",
    "version: 1\n" + BACKENDS + "routes:\n  - name: exact\n    match: {exact: /health, methods: "
    "[GET]}\n    split: {orders-v2: 1}\n    retries: {attempts: 0}\n"
    "istio: {hosts: [a.example.com], gateways: [gw]}\n",
]


@pytest.mark.parametrize("text", VARIANTS)
def test_every_rendered_object_is_valid_under_istios_schema(text: str) -> None:
    for obj in render(parse(text)).objects:
        validate(obj)


def test_schema_check_catches_unknown_and_mistyped_fields() -> None:
    obj = by_kind(render(parse(EXAMPLE)).objects, "VirtualService")[0]
    obj["spec"]["http"][2]["mirrorRatio"] = 5  # not a field: the round trip drops it
    with pytest.raises(AssertionError):
        validate(obj)
    bad = by_kind(render(parse(EXAMPLE)).objects, "VirtualService")[0]
    bad["spec"]["http"][2]["route"][0]["weight"] = "twenty"
    with pytest.raises(ValueError):
        validate(bad)


# -- the mesh routes as the gateway does ---------------------------------------------------

PATHS = [
    "/",
    "/api",
    "/api/users",
    "/api/users/",
    "/api/users/7",
    "/api/usersx",
    "/api/orders",
    "/api/orders/12",
    "/x",
    "/xy",
    "/x/y",
]
MATCH_PATHS = ["/", "/api", "/api/users", "/api/users/", "/api/orders", "/x"]
REGEXES = ["/api/[a-z]+", "/api/users/[0-9]+", "/x.*"]
NAMES = ["legacy", "users-v2", "orders-v2"]
HEADER_VALUES = ["1", "2"]


def value_match(draw: st.DrawFn, allow_absent: bool) -> dict[str, Any]:
    kinds = ["exact", "regex", "present", "absent", "not-present", "not-absent"]
    if not allow_absent:
        kinds = ["exact", "regex", "present", "not-absent"]
    kind = draw(st.sampled_from(kinds))
    if kind == "exact":
        return {"exact": draw(st.sampled_from(HEADER_VALUES))}
    if kind == "regex":
        return {"regex": draw(st.sampled_from(["[12]", "1|3", "[0-9]+"]))}
    return {
        "present": {"present": True},
        "absent": {"absent": True},
        "not-present": {"present": False},
        "not-absent": {"absent": False},
    }[kind]


@st.composite
def configs(draw: st.DrawFn) -> str:
    routes = []
    for i in range(draw(st.integers(1, 4))):
        route: dict[str, Any] = {"name": f"r{i}"}
        match: dict[str, Any] = {}
        kind = draw(st.sampled_from(["prefix", "raw", "exact", "regex", "none"]))
        if kind in ("prefix", "raw"):
            match["prefix"] = draw(st.sampled_from(MATCH_PATHS))
            if kind == "raw":
                match["prefix_mode"] = "raw"
        elif kind == "exact":
            match["exact"] = draw(st.sampled_from(MATCH_PATHS))
        elif kind == "regex":
            match["regex"] = draw(st.sampled_from(REGEXES))
        if draw(st.booleans()):
            match["methods"] = draw(
                st.lists(st.sampled_from(["GET", "POST", "PUT"]), min_size=1, unique=True)
            )
        headers = draw(st.lists(st.sampled_from(["x-a", "x-b"]), unique=True, max_size=2))
        if headers:
            match["headers"] = {h: value_match(draw, True) for h in headers}
        if draw(st.booleans()):
            match["query"] = {"q": value_match(draw, False)}
        if match:
            route["match"] = match
        names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
        weights = [draw(st.integers(0, 100)) for _ in names]
        if not any(weights):
            weights[0] = 1
        route["split"] = dict(zip(names, weights, strict=True))
        if draw(st.booleans()):
            route["override"] = {"header": "x-force"}
        if draw(st.booleans()):
            route["sticky"] = {"header": "x-user"}
        routes.append(route)
    doc = {
        "version": 1,
        "backends": {
            "legacy": {
                "url": "http://127.0.0.1:1",
                "legacy": True,
                "kubernetes": {"host": "legacy.svc"},
            },
            "users-v2": {"url": "http://127.0.0.1:2", "kubernetes": {"host": "users.svc"}},
            "orders-v2": {
                "url": "http://127.0.0.1:3",
                "kubernetes": {"host": "orders.svc", "subset": "v2"},
            },
        },
        "routes": routes,
        "istio": {"hosts": ["h.example.com"]},
    }
    return yaml.safe_dump(doc)


HEADER_SETS: list[dict[str, str]] = [
    {},
    {"x-a": "1"},
    {"x-a": "2", "x-b": "1"},
    {"x-b": "3", "x-user": "alice"},
    {"x-force": "users-v2"},
    {"x-force": "legacy", "x-a": "1", "x-b": "2"},
    {"x-force": "nobody", "x-a": "3"},
]
QUERIES: list[dict[str, str]] = [{}, {"q": "1"}, {"q": "2"}, {"r": "1"}]
REQUESTS = [
    Request(method, path, headers, query)
    for path in PATHS
    for method in ("GET", "POST", "DELETE")
    for headers in HEADER_SETS
    for query in QUERIES
]


def mesh_decisions(config: Config) -> Any:
    vs = by_kind(render(config).objects, "VirtualService")[0]
    names: dict[Any, str] = {
        (b.k8s_host, b.k8s_port, b.k8s_subset): name for name, b in config.backends.items()
    }

    def decide(request: Request) -> tuple[str, dict[str, float]] | None:
        outcome = interpret(vs["spec"]["http"], request)
        if outcome is None:
            return None
        route = (outcome.name or "").split("--override-")[0]
        return route, {names[key]: share for key, share in outcome.shares.items()}

    return decide


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_mesh_routes_every_request_as_the_gateway_does(text: str) -> None:
    """Random configurations; for each, every request of a fixed grid that crosses path
    boundaries (``/api/users`` vs ``/api/usersx``), methods, headers, override values and
    query parameters."""
    config = parse(text)
    table = Table(config)
    mesh = mesh_decisions(config)
    for request in REQUESTS:
        facts = Facts(request.method, request.path, request.headers, request.query)
        gateway = table.shares(facts)
        routed = mesh(request)
        if gateway is None or routed is None:
            assert gateway == routed, request
            continue
        assert gateway[0] == routed[0], request
        assert gateway[1].keys() == routed[1].keys(), request
        for name, share in gateway[1].items():
            assert routed[1][name] == pytest.approx(share), request
