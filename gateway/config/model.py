"""The checked configuration as frozen values, plus the few rules every reader shares.

The dataclasses are what the rest of the gateway uses.  Their defaults are read
from :mod:`gateway.config.spec`, the single place defaults are written, so
constructing e.g. ``Retries()`` in a test gives what an absent ``retries:``
section gives in routes.yaml.

The shared rules live here once: which path a :class:`Match` covers
(:func:`path_matches`), which backends are the legacy system
(:func:`legacy_backends`) and what a capture path placeholder looks like
(:data:`PLACEHOLDER`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.config.spec import (
    BACKEND,
    CAPTURE,
    KUBERNETES,
    MATCH,
    NOISE,
    OUTLIER,
    PROXY,
    RETRIES,
    SHADOW,
    TIMEOUTS,
)
from gateway.config.spec_rollout import (
    ERROR_RATE,
    LATENCY_P99,
    ROLLOUT,
    ROLLOUT_STORE,
    SHADOW_MATCH,
    STEP,
)

# A ``{name}`` placeholder in a capture path template.  Anything between braces is
# a placeholder; the checks insist the name is an identifier used once, so the
# capture rules can turn each into a named regex group.
PLACEHOLDER = re.compile(r"\{([^{}/]*)\}")

LEGACY_NAME = "legacy"


class Value:
    """The base of the configuration's frozen values: they pickle and deep-copy through
    their constructor.  Compiled (``gateway/native.py``), a class's own state restore
    would assign each field, which a frozen dataclass refuses."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return type(self), tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]


def legacy_backends(marked: Mapping[str, bool]) -> frozenset[str]:
    """The legacy system's backends: those marked ``legacy: true``, else the one named
    'legacy', else none.  ``marked`` maps each backend name to its ``legacy`` flag."""
    legacy = frozenset(name for name, flag in marked.items() if flag)
    if legacy:
        return legacy
    return frozenset({LEGACY_NAME}) if LEGACY_NAME in marked else frozenset()


@dataclass(frozen=True, slots=True)
class ValueMatch(Value):
    """How one header or query parameter must look: exactly one of the fields is set."""

    exact: str | None = None
    regex: re.Pattern[str] | None = None
    present: bool | None = None
    absent: bool | None = None

    def matches(self, value: str | None) -> bool:
        if self.absent is not None:
            return (value is None) == self.absent
        if self.present is not None:
            return (value is not None) == self.present
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        assert self.regex is not None
        return self.regex.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Match(Value):
    kind: str  # "prefix" | "exact" | "regex"
    path: str  # the prefix, the exact path, or the regex source
    prefix_mode: str = MATCH.default_of("prefix_mode")
    regex: re.Pattern[str] | None = None
    methods: frozenset[str] | None = None
    headers: tuple[tuple[str, ValueMatch], ...] = ()
    query: tuple[tuple[str, ValueMatch], ...] = ()


def path_matches(match: Match, path: str) -> bool:
    """Whether a normalised path satisfies the path part of a match."""
    if match.kind == "exact":
        return path == match.path
    if match.kind == "regex":
        assert match.regex is not None
        return match.regex.fullmatch(path) is not None
    prefix = match.path
    if not path.startswith(prefix):
        return False
    if match.prefix_mode == "raw" or prefix.endswith("/") or len(path) == len(prefix):
        return True
    return path[len(prefix)] == "/"


def _value_match(spec: Mapping[str, Any]) -> ValueMatch:
    return ValueMatch(
        exact=spec["exact"],
        regex=re.compile(spec["regex"]) if spec["regex"] is not None else None,
        present=spec["present"],
        absent=spec["absent"],
    )


def match_of(spec: Mapping[str, Any] | None) -> Match:
    """The :class:`Match` of a checked ``match:`` mapping (None: every path)."""
    if spec is None:
        return Match(kind="prefix", path="/")
    kind, value = "prefix", "/"
    for candidate in ("exact", "regex", "prefix"):
        if spec[candidate] is not None:
            kind, value = candidate, spec[candidate]
            break
    return Match(
        kind=kind,
        path=value,
        prefix_mode=spec["prefix_mode"],
        regex=re.compile(value) if kind == "regex" else None,
        methods=frozenset(spec["methods"]) if spec["methods"] is not None else None,
        headers=tuple((k.lower(), _value_match(v)) for k, v in spec["headers"].items()),
        query=tuple((k, _value_match(v)) for k, v in spec["query"].items()),
    )


@dataclass(frozen=True, slots=True)
class Outlier(Value):
    consecutive_failures: int = OUTLIER.default_of("consecutive_failures")
    base_ejection: float = OUTLIER.default_of("base_ejection")
    max_ejection: float = OUTLIER.default_of("max_ejection")
    max_ejected_percent: int = OUTLIER.default_of("max_ejected_percent")


@dataclass(frozen=True, slots=True)
class Backend(Value):
    name: str
    url: str
    host: str
    port: int
    base_path: str
    legacy: bool = BACKEND.default_of("legacy")
    connect_timeout: float = TIMEOUTS.default_of("connect")
    request_timeout: float = TIMEOUTS.default_of("request")
    pool_size: int = BACKEND.default_of("pool_size")
    max_pending: int = BACKEND.default_of("max_pending")
    host_header: str = BACKEND.default_of("host_header")
    outlier: Outlier | None = None
    k8s_host: str | None = None
    k8s_port: int = KUBERNETES.default_of("port")
    k8s_subset: str | None = None


@dataclass(frozen=True, slots=True)
class Retries(Value):
    attempts: int = RETRIES.default_of("attempts")
    on: frozenset[str] = frozenset(RETRIES.default_of("on"))
    per_try_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Noise(Value):
    secondary: bool = NOISE.default_of("secondary")
    relative_threshold: float = NOISE.default_of("relative_threshold")
    absolute_threshold: float = NOISE.default_of("absolute_threshold")


@dataclass(frozen=True, slots=True)
class Shadow(Value):
    backend: str
    percent: float = SHADOW.default_of("percent")
    methods: frozenset[str] = frozenset(SHADOW.default_of("methods"))
    allow_writes: bool = SHADOW.default_of("allow_writes")
    ignore: tuple[str, ...] = tuple(SHADOW.default_of("ignore"))
    numeric_tolerance: float = SHADOW.default_of("numeric_tolerance")
    max_body_bytes: int = SHADOW.default_of("max_body_bytes")
    concurrency: int = SHADOW.default_of("concurrency")
    queue: int = SHADOW.default_of("queue")
    timeout: float = SHADOW.default_of("timeout")
    store_values: bool = SHADOW.default_of("store_values")
    noise: Noise = field(default_factory=Noise)


@dataclass(frozen=True, slots=True)
class Capture(Value):
    method: str
    path: str
    event: str
    aggregate: str
    id: str
    payload: str = CAPTURE.default_of("payload")
    schema_version: int = CAPTURE.default_of("schema_version")
    backends: frozenset[str] = frozenset()  # resolved: absent in routes.yaml means legacy
    id_type: str = CAPTURE.default_of("id_type")


@dataclass(frozen=True, slots=True)
class Step(Value):
    """One rollout step: the new backend's weight, whether an operator approves it first,
    and its own interval (None: the rollout's)."""

    weight: int
    approve: bool = STEP.default_of("approve")
    interval: float | None = None


@dataclass(frozen=True, slots=True)
class Gates(Value):
    """What a step must show before the next: fractions (0.01 is 1%); None turns a gate off."""

    error_rate_max: float | None = ERROR_RATE.default_of("max")
    error_rate_max_over_legacy: float | None = ERROR_RATE.default_of("max_over_legacy")
    latency_p99_max_ratio: float | None = LATENCY_P99.default_of("max_ratio")
    shadow_match_min: float | None = None
    shadow_min_compared: int = SHADOW_MATCH.default_of("min_compared")


@dataclass(frozen=True, slots=True)
class Rollout(Value):
    """A route's progressive rollout (the ``rollout:`` block)."""

    backend: str
    steps: tuple[Step, ...]
    interval: float = ROLLOUT.default_of("interval")
    min_requests: int = ROLLOUT.default_of("min_requests")
    gates: Gates = field(default_factory=Gates)
    failures_before_rollback: int = ROLLOUT.default_of("failures_before_rollback")

    def interval_of(self, index: int) -> float:
        """The interval of step ``index``."""
        own = self.steps[index].interval
        return own if own is not None else self.interval


@dataclass(frozen=True, slots=True)
class Route(Value):
    name: str
    match: Match
    split: tuple[tuple[str, int], ...]
    sticky_header: str | None = None
    sticky_cookie: str | None = None
    override_header: str | None = None
    fallback: str | None = None
    retries: Retries = field(default_factory=Retries)
    retries_configured: bool = False
    timeout: float | None = None
    max_body_bytes: int | None = None
    shadow: Shadow | None = None
    capture: tuple[Capture, ...] = ()
    rollout: Rollout | None = None

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.split)


@dataclass(frozen=True, slots=True)
class ProxySettings(Value):
    trusted_proxies: tuple[str, ...] = tuple(PROXY.default_of("trusted_proxies"))
    route_header: str = PROXY.default_of("route_header")
    backend_header: str = PROXY.default_of("backend_header")
    response_headers: bool = PROXY.default_of("response_headers")
    max_header_bytes: int = PROXY.default_of("max_header_bytes")
    max_body_bytes: int = PROXY.default_of("max_body_bytes")
    replay_buffer_bytes: int = PROXY.default_of("replay_buffer_bytes")
    client_timeout: float = PROXY.default_of("client_timeout")
    access_log: bool = PROXY.default_of("access_log")
    #: the variable holding the reverse sync's secret (None: client origin headers always go)
    origin_token_env: str | None = PROXY.default_of("origin_token_env")


@dataclass(frozen=True, slots=True)
class Config(Value):
    source: str
    listen: tuple[str, int]
    admin_listen: tuple[str, int]
    admin_token_env: str | None
    admin_metrics_token_env: str | None
    admin_allowed_hosts: tuple[str, ...]
    proxy: ProxySettings
    backends: dict[str, Backend]
    routes: tuple[Route, ...]
    outbox: dict[str, Any]
    kafka: dict[str, Any]
    shadow_store_url: str | None
    istio: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    rollout_store_url: str = ROLLOUT_STORE.default_of("url")

    @property
    def legacy(self) -> frozenset[str]:
        """The names of the legacy system's backends (see :func:`legacy_backends`)."""
        return legacy_backends({name: b.legacy for name, b in self.backends.items()})
