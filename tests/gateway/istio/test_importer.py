"""Importing VirtualServices: the supported subset round-trips through render under the
interpreter; everything else is refused by name."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import parse
from gateway.istio.importer import ImportError_, import_virtual_service
from gateway.istio.render import render
from tests.gateway.istio.interpreter import Outcome, Request, interpret

SAMPLES = Path(__file__).parent / "samples"
RULES = list(yaml.safe_load_all((SAMPLES / "destination-rules.yaml").read_text()))


def sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text())
    return doc


def imported(vs: dict[str, Any], rules: list[dict[str, Any]] | None = None) -> str:
    return yaml.safe_dump(import_virtual_service(vs, rules), sort_keys=False)


GRID = [
    Request(method, path, headers, query)
    for method, path, headers, query in itertools.product(
        ["GET", "POST"],
        [
            "/",
            "/productpage",
            "/productpage/x",
            "/static",
            "/static/app.js",
            "/staticx",
            "/login",
            "/logout",
            "/api/v1/products",
            "/api/v1/products/1",
            "/reviews/1",
        ],
        [{}, {"end-user": "jason"}, {"end-user": "ann"}],
        [{}, {"u": "1"}],
    )
]


def comparable(outcome: Outcome | None) -> Any:
    if outcome is None:
        return None
    return {
        (host, port or 80, subset): share for (host, port, subset), share in outcome.shares.items()
    }


def assert_equivalent(vs: dict[str, Any], text: str) -> None:
    """render(import(vs)) routes every request of the grid as vs does."""
    [again] = [o for o in render(parse(text)).objects if o["kind"] == "VirtualService"]
    for request in GRID:
        want = comparable(interpret(vs["spec"]["http"], request))
        got = comparable(interpret(again["spec"]["http"], request))
        assert got == want, request


@pytest.mark.parametrize(
    "name",
    [
        "reviews-80-20.yaml",
        "reviews-jason-v2-v3.yaml",
        "reviews-v1-v2-v3.yaml",
        "bookinfo-gateway.yaml",
    ],
)
def test_samples_import_and_round_trip(name: str) -> None:
    vs = sample(name)
    text = imported(vs, RULES if "reviews" in name else None)
    config = parse(text)  # a valid routes.yaml
    assert config.routes
    assert_equivalent(vs, text)


def test_weighted_split_becomes_backends_named_after_subsets() -> None:
    doc = import_virtual_service(sample("reviews-80-20.yaml"), RULES)
    assert doc["backends"] == {
        "v1": {
            "url": "http://reviews:80",
            "kubernetes": {"host": "reviews", "port": 80, "subset": "v1"},
        },
        "v2": {
            "url": "http://reviews:80",
            "kubernetes": {"host": "reviews", "port": 80, "subset": "v2"},
        },
    }
    assert doc["routes"] == [{"name": "route-0", "split": {"v1": 80, "v2": 20}}]
    assert doc["istio"] == {"hosts": ["reviews"]}


def test_policies_and_several_matches() -> None:
    doc = import_virtual_service(sample("reviews-v1-v2-v3.yaml"), None)
    [route] = doc["routes"]
    assert route["timeout"] == "5s"
    assert route["retries"] == {
        "attempts": 3,
        "per_try_timeout": "2s",
        "on": ["connect-failure", "5xx"],
    }
    assert doc["istio"]["namespace"] == "bookinfo"
    gateway = import_virtual_service(sample("bookinfo-gateway.yaml"))
    assert [r["name"] for r in gateway["routes"]] == [f"route-0-{i}" for i in range(1, 6)]
    assert gateway["routes"][1]["match"] == {"prefix": "/static", "prefix_mode": "raw"}
    assert gateway["istio"]["gateways"] == ["bookinfo-gateway"]


def test_fault_injection_is_refused_by_name() -> None:
    with pytest.raises(ImportError_) as info:
        import_virtual_service(sample("ratings-delay.yaml"), RULES)
    assert info.value.problems == ["http[0].fault: fault injection is not supported"]


def test_every_unsupported_field_is_named() -> None:
    vs = {
        "kind": "VirtualService",
        "spec": {
            "hosts": ["a"],
            "tcp": [{}],
            "http": [
                {
                    "match": [{"uri": {"exact": "/a"}, "sourceLabels": {"app": "x"}}],
                    "rewrite": {"uri": "/b"},
                    "route": [{"destination": {"host": "a"}, "headers": {}}],
                    "retries": {"attempts": 1, "retryOn": "cancelled"},
                }
            ],
        },
    }
    with pytest.raises(ImportError_) as info:
        import_virtual_service(vs)
    assert info.value.problems == [
        "spec.tcp: TCP routes are not supported",
        "http[0].rewrite: URI/authority rewrite is not supported",
        "http[0].route[0].headers: header manipulation is not supported",
        "http[0].retries.retryOn: unsupported conditions ['cancelled']",
        "http[0].match[0].sourceLabels: matching on this field is not supported",
    ]


def test_unknown_subset_is_refused_when_destination_rules_are_given() -> None:
    vs = sample("reviews-80-20.yaml")
    vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = "v9"
    with pytest.raises(ImportError_, match=r"subset 'v9' of reviews is not defined"):
        import_virtual_service(vs, RULES)


def test_our_own_render_imports_back_to_the_same_routing() -> None:
    text = """\
version: 1
backends:
  legacy: {url: "http://127.0.0.1:1", legacy: true, kubernetes: {host: legacy.svc}}
  v2: {url: "http://127.0.0.1:2", kubernetes: {host: users.svc, subset: v2}}
routes:
  - name: users
    match: {prefix: /api/users, methods: [GET], headers: {x-a: {absent: true}}}
    split: {v2: 20, legacy: 80}
  - name: rest
    split: {legacy: 100}
istio: {hosts: [h]}
"""
    [vs] = [o for o in render(parse(text)).objects if o["kind"] == "VirtualService"]
    doc = import_virtual_service(vs)
    assert doc["routes"][0]["match"] == {
        "prefix": "/api/users",
        "methods": ["GET"],
        "headers": {"x-a": {"absent": True}},
    }
    assert_equivalent(vs, yaml.safe_dump(doc))
