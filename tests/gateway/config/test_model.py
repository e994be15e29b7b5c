"""The configuration values: defaults come from the spec only, and the shared rules
(path matching, which backends are legacy, capture placeholders) behave as documented."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from textwrap import dedent
from typing import Any

import pytest

from gateway.config import model, parse, spec_rollout
from gateway.config.model import (
    PLACEHOLDER,
    Backend,
    Capture,
    Match,
    Noise,
    Outlier,
    ProxySettings,
    Retries,
    Route,
    Shadow,
    ValueMatch,
    legacy_backends,
    match_of,
    path_matches,
)
from gateway.config.schema import Obj
from gateway.config.spec import (
    BACKEND,
    CAPTURE,
    KUBERNETES,
    MATCH,
    NOISE,
    OUTLIER,
    PROXY,
    RETRIES,
    ROUTE,
    SHADOW,
    TIMEOUTS,
    VALUE_MATCH,
)

# Where each dataclass's defaults are written in the spec.
SOURCES: dict[type, Obj] = {
    ValueMatch: VALUE_MATCH,
    Match: MATCH,
    Outlier: OUTLIER,
    Backend: BACKEND,
    Retries: RETRIES,
    Noise: NOISE,
    Shadow: SHADOW,
    Capture: CAPTURE,
    Route: ROUTE,
    model.Step: spec_rollout.STEP,
    model.Rollout: spec_rollout.ROLLOUT,
    model.Gates: spec_rollout.GATES,
    ProxySettings: PROXY,
}
# Fields whose spec counterpart has another name or lives in a sub-section.
RENAMED: dict[tuple[type, str], tuple[Obj, str]] = {
    (Backend, "connect_timeout"): (TIMEOUTS, "connect"),
    (Backend, "request_timeout"): (TIMEOUTS, "request"),
    (Backend, "k8s_host"): (KUBERNETES, "host"),
    (Backend, "k8s_port"): (KUBERNETES, "port"),
    (Backend, "k8s_subset"): (KUBERNETES, "subset"),
    (model.Gates, "error_rate_max"): (spec_rollout.ERROR_RATE, "max"),
    (model.Gates, "error_rate_max_over_legacy"): (spec_rollout.ERROR_RATE, "max_over_legacy"),
    (model.Gates, "latency_p99_max_ratio"): (spec_rollout.LATENCY_P99, "max_ratio"),
    (model.Gates, "shadow_min_compared"): (spec_rollout.SHADOW_MATCH, "min_compared"),
}
# Defaults that describe the built value, not the document.
MODEL_ONLY = {
    (Capture, "backends"),  # resolved when building: absent means the legacy backends
    (Route, "retries_configured"),  # whether routes.yaml had a retries section
}
_ABSENT = object()


def _as_model(spec_default: Any, model_default: Any) -> Any:
    """The spec's default in the model's shape (lists become tuples or frozensets)."""
    if isinstance(model_default, frozenset) and spec_default is not None:
        return frozenset(spec_default)
    if isinstance(model_default, tuple) and isinstance(spec_default, dict):
        return tuple(spec_default.items())
    if isinstance(model_default, tuple) and isinstance(spec_default, list):
        return tuple(spec_default)
    return spec_default


def drift(cls: type, spec: Obj, renamed: dict[tuple[type, str], tuple[Obj, str]]) -> list[str]:
    """Every default of ``cls`` that differs from, or is missing in, the spec."""
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue
        if (cls, f.name) in MODEL_ONLY or dataclasses.is_dataclass(default):
            continue  # nested values are checked as their own class
        where, key = renamed.get((cls, f.name), (spec, f.name))
        written = where.fields[key].default if key in where.fields else _ABSENT
        if written is _ABSENT:
            if default not in (None, ()):
                out.append(f"{cls.__name__}.{f.name} = {default!r} has no spec default")
        elif _as_model(written, default) != default:
            out.append(f"{cls.__name__}.{f.name} = {default!r}, spec says {written!r}")
    return out


@pytest.mark.parametrize("cls", list(SOURCES), ids=lambda c: c.__name__)
def test_dataclass_defaults_equal_spec_defaults(cls: type) -> None:
    assert drift(cls, SOURCES[cls], RENAMED) == []


def test_every_model_dataclass_is_compared() -> None:
    classes = {
        v for v in vars(model).values() if isinstance(v, type) and dataclasses.is_dataclass(v)
    }
    assert classes - set(SOURCES) == {model.Config}  # Config has no defaults but `raw`


def test_the_drift_check_can_fail() -> None:
    @dataclasses.dataclass
    class Drifting:
        attempts: int = 3  # the spec says 2
        invented: str = "x"  # not in the spec

    assert drift(Drifting, RETRIES, {}) == [
        "Drifting.attempts = 3, spec says 2",
        "Drifting.invented = 'x' has no spec default",
    ]


def test_a_configuration_pickles_and_deep_copies_to_an_equal_one() -> None:
    # Compiled, the frozen values cannot restore their state field by field: they
    # round-trip through their constructor (model.Value.__reduce__).
    config = parse(
        dedent("""\
        version: 1
        backends: {legacy: {url: "http://127.0.0.1:1"}, v2: {url: "http://127.0.0.1:2"}}
        routes:
          - name: r
            match: {prefix: /api, headers: {x-v: {exact: "2"}}}
            split: {legacy: 90, v2: 10}
            retries: {attempts: 1}
            shadow: {backend: v2, noise: {secondary: true}}
        """)
    )
    for again in (pickle.loads(pickle.dumps(config)), copy.deepcopy(config)):
        assert again == config and again is not config
        assert again.routes[0].retries == Retries(attempts=1)
        assert again.raw == config.raw and again.raw is not config.raw
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.routes[0].retries.attempts = 5  # type: ignore[misc]


def test_defaults_are_fresh_copies() -> None:
    first = RETRIES.default_of("on")
    first.append("5xx")
    assert RETRIES.default_of("on") == ["connect-failure", "refused-stream", "reset"]


def test_direct_construction_matches_an_absent_section() -> None:
    text = dedent("""\
        version: 1
        backends: {legacy: {url: "http://127.0.0.1:1"}}
        routes:
          - {name: r, split: {legacy: 1}, shadow: {backend: legacy}}
        """)
    config = parse(text)
    route = config.routes[0]
    assert route.retries == Retries()
    assert route.shadow == Shadow(backend="legacy")
    assert config.proxy == ProxySettings()
    legacy = config.backends["legacy"]
    assert legacy == Backend("legacy", legacy.url, legacy.host, legacy.port, legacy.base_path)


@pytest.mark.parametrize(
    ("prefix", "mode", "path", "expected"),
    [
        ("/api/users", "segment", "/api/users", True),
        ("/api/users", "segment", "/api/users/7", True),
        ("/api/users", "segment", "/api/usersX", False),
        ("/api/users", "raw", "/api/usersX", True),
        ("/api/users/", "segment", "/api/users/7", True),
        ("/", "segment", "/anything", True),
    ],
)
def test_prefix_is_segment_aware(prefix: str, mode: str, path: str, expected: bool) -> None:
    assert path_matches(Match("prefix", prefix, prefix_mode=mode), path) is expected


def test_match_of_builds_exact_regex_and_value_matches() -> None:
    spec = {
        "prefix": None,
        "exact": None,
        "regex": "/a/[0-9]+",
        "prefix_mode": "segment",
        "methods": ["GET"],
        "headers": {"X-Env": {"exact": "qa", "regex": None, "present": None, "absent": None}},
        "query": {},
    }
    match = match_of(spec)
    assert match.kind == "regex" and path_matches(match, "/a/12")
    assert not path_matches(match, "/a/12/b")
    assert match.headers[0][0] == "x-env" and match.headers[0][1].matches("qa")
    assert match_of(None) == Match("prefix", "/")


@pytest.mark.parametrize(
    ("marked", "expected"),
    [
        ({"old": True, "new": False}, {"old"}),
        ({"legacy": False, "old": True}, {"old"}),  # a mark beats the name
        ({"legacy": False, "new": False}, {"legacy"}),
        ({"monolith": False, "new": False}, set()),
    ],
)
def test_legacy_backends(marked: dict[str, bool], expected: set[str]) -> None:
    assert legacy_backends(marked) == frozenset(expected)


def test_config_legacy_uses_the_same_rule() -> None:
    text = dedent("""\
        version: 1
        backends:
          legacy: {url: "http://127.0.0.1:1"}
          old: {url: "http://127.0.0.1:2", legacy: true}
        routes:
          - {name: r, split: {legacy: 1, old: 1}}
        """)
    assert parse(text).legacy == frozenset({"old"})


def test_placeholder_finds_every_braced_name() -> None:
    assert PLACEHOLDER.findall("/a/{id}/b/{1x}/{}") == ["id", "1x", ""]
    assert PLACEHOLDER.split("/a/{id}/b") == ["/a/", "id", "/b"]
