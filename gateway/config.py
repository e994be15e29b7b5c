"""routes.yaml -> frozen :class:`Config`, or a :class:`ConfigError` listing every problem.

Pure: reads text, returns values.  The shape of the document is in
:mod:`gateway.config_spec`; this module adds the checks that need the whole
document (backend references, route names, capture paths inside their route)
and builds the value objects the rest of the gateway uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.config_spec import DOCUMENT, SAFE_METHODS
from gateway.schema import INVALID, Checker
from gateway.yamlsource import DocumentError, Problem, join, load


class ConfigError(Exception):
    """A configuration could not be used; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ValueMatch:
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
class Match:
    kind: str  # "prefix" | "exact" | "regex"
    path: str  # the prefix, the exact path, or the regex source
    prefix_mode: str = "segment"
    regex: re.Pattern[str] | None = None
    methods: frozenset[str] | None = None
    headers: tuple[tuple[str, ValueMatch], ...] = ()
    query: tuple[tuple[str, ValueMatch], ...] = ()


@dataclass(frozen=True, slots=True)
class Outlier:
    consecutive_failures: int = 5
    base_ejection: float = 30.0
    max_ejection: float = 300.0
    max_ejected_percent: int = 100


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    url: str
    host: str
    port: int
    base_path: str
    legacy: bool = False
    connect_timeout: float = 1.0
    request_timeout: float = 30.0
    pool_size: int = 256
    host_header: str = "preserve"
    outlier: Outlier | None = None
    k8s_host: str | None = None
    k8s_port: int = 80
    k8s_subset: str | None = None


@dataclass(frozen=True, slots=True)
class Retries:
    attempts: int = 2
    on: frozenset[str] = frozenset({"connect-failure", "refused-stream", "reset"})
    per_try_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Noise:
    secondary: bool = False
    relative_threshold: float = 0.2
    absolute_threshold: float = 0.0003


@dataclass(frozen=True, slots=True)
class Shadow:
    backend: str
    percent: float = 100.0
    methods: frozenset[str] = frozenset(SAFE_METHODS)
    allow_writes: bool = False
    ignore: tuple[str, ...] = ()
    numeric_tolerance: float = 0.0
    max_body_bytes: int = 1_048_576
    concurrency: int = 16
    queue: int = 64
    timeout: float = 5.0
    store_values: bool = False
    noise: Noise = field(default_factory=Noise)


@dataclass(frozen=True, slots=True)
class Capture:
    method: str
    path: str
    event: str
    aggregate: str
    id: str
    payload: str = "both"
    schema_version: int = 1
    backends: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Route:
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

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.split)


@dataclass(frozen=True, slots=True)
class ProxySettings:
    trusted_proxies: tuple[str, ...] = ()
    route_header: str = "x-strangler-route"
    backend_header: str = "x-strangler-backend"
    response_headers: bool = True
    max_header_bytes: int = 65536
    max_body_bytes: int = 104_857_600
    replay_buffer_bytes: int = 65536
    client_timeout: float = 60.0
    access_log: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    listen: tuple[str, int]
    admin_listen: tuple[str, int]
    admin_token_env: str | None
    proxy: ProxySettings
    backends: dict[str, Backend]
    routes: tuple[Route, ...]
    outbox: dict[str, Any]
    kafka: dict[str, Any]
    shadow_store_url: str | None
    istio: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)


def load_file(path: str | Path) -> Config:
    """Read and check a routes.yaml file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(p), None, "", f"cannot read file: {exc.strerror}")]) from exc
    return parse(text, str(p))


def parse(text: str, file: str = "routes.yaml") -> Config:
    """Check a routes.yaml document and build its :class:`Config`."""
    try:
        source = load(text, file)
    except DocumentError as exc:
        raise ConfigError([exc.problem]) from exc
    ck = Checker(source, file)
    data = DOCUMENT.check(source.data, "", ck) if source.data is not None else None
    if source.data is None:
        ck.problem("", "the document is empty; expected a mapping with version, backends, routes")
    if data is INVALID or data is None or ck.problems:
        raise ConfigError(ck.problems)
    _cross_check(data, ck)
    if ck.problems:
        raise ConfigError(ck.problems)
    return _build(data, file)


def _cross_check(doc: dict[str, Any], ck: Checker) -> None:
    backends: dict[str, Any] = doc["backends"]
    known = ", ".join(backends)

    def backend_ref(name: str, path: str, key: bool = False) -> None:
        if name not in backends:
            ck.problem(path, f"unknown backend '{name}' (known: {known})", key=key)

    seen: dict[str, int] = {}
    for i, route in enumerate(doc["routes"]):
        rpath = join("routes", i)
        if route["name"] in seen:
            ck.problem(
                join(rpath, "name"),
                f"duplicate route name '{route['name']}' (also routes[{seen[route['name']]}])",
            )
        seen.setdefault(route["name"], i)
        for name in route["split"]:
            backend_ref(name, join(join(rpath, "split"), name), key=True)
        if route["split"] and all(w == 0 for w in route["split"].values()):
            ck.problem(join(rpath, "split"), "all weights are zero; at least one must be above 0")
        if route["fallback"] is not None:
            backend_ref(route["fallback"], join(rpath, "fallback"))
        shadow = route["shadow"]
        if shadow is not None:
            backend_ref(shadow["backend"], join(join(rpath, "shadow"), "backend"))
            writes = sorted(set(shadow["methods"]) - set(SAFE_METHODS))
            if writes and not shadow["allow_writes"]:
                ck.problem(
                    join(join(rpath, "shadow"), "methods"),
                    f"shadowing writes ({', '.join(writes)}) needs allow_writes: true",
                )
            for k, item in enumerate(shadow["ignore"]):
                if not (item.startswith("/") or (item.startswith("header:") and item[7:].strip())):
                    ck.problem(
                        join(join(join(rpath, "shadow"), "ignore"), k),
                        f"{item!r} is neither a JSON pointer (/a/*/b) nor header:NAME",
                    )
        match = _build_match(route["match"])
        for j, cap in enumerate(route["capture"]):
            cpath = join(join(rpath, "capture"), j)
            for k, name in enumerate(cap["backends"] or ()):
                backend_ref(name, join(join(cpath, "backends"), k))
            if cap["backends"] is None and not _legacy_backends(backends):
                ck.problem(
                    cpath,
                    "no backend is marked legacy: true (and none is named 'legacy'); "
                    "say which backends' writes are captured with backends: [...]",
                )
            _check_capture_path(cap, match, route["name"], cpath, ck)


def _legacy_backends(backends: dict[str, Any]) -> frozenset[str]:
    marked = frozenset(n for n, b in backends.items() if b["legacy"])
    if marked:
        return marked
    return frozenset({"legacy"}) if "legacy" in backends else frozenset()


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _check_capture_path(
    cap: dict[str, Any], match: Match, route: str, path: str, ck: Checker
) -> None:
    names = _PLACEHOLDER.findall(cap["path"])
    source, _, arg = cap["id"].partition(":")
    if source == "path" and arg not in names:
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
    sample = _PLACEHOLDER.sub("x1", cap["path"])
    if not path_matches(match, sample):
        ck.problem(
            join(path, "path"),
            f"{cap['path']} is outside route '{route}' ({match.kind} {match.path})",
        )


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


def _value_match(spec: dict[str, Any]) -> ValueMatch:
    return ValueMatch(
        exact=spec["exact"],
        regex=re.compile(spec["regex"]) if spec["regex"] is not None else None,
        present=spec["present"],
        absent=spec["absent"],
    )


def _build_match(spec: dict[str, Any] | None) -> Match:
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


def _split_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _build_backend(name: str, spec: dict[str, Any]) -> Backend:
    url = urlsplit(spec["url"])
    k8s = spec["kubernetes"]
    outlier = spec["outlier"]
    return Backend(
        name=name,
        url=spec["url"],
        host=url.hostname or "127.0.0.1",
        port=url.port or 80,
        base_path=url.path.rstrip("/"),
        legacy=spec["legacy"],
        connect_timeout=spec["timeouts"]["connect"],
        request_timeout=spec["timeouts"]["request"],
        pool_size=spec["pool_size"],
        host_header=spec["host_header"],
        outlier=Outlier(**outlier) if outlier is not None else None,
        k8s_host=k8s["host"] if k8s else None,
        k8s_port=k8s["port"] if k8s else 80,
        k8s_subset=k8s["subset"] if k8s else None,
    )


def _build_route(spec: dict[str, Any], legacy: frozenset[str]) -> Route:
    retries = spec["retries"]
    shadow = spec["shadow"]
    return Route(
        name=spec["name"],
        match=_build_match(spec["match"]),
        split=tuple(spec["split"].items()),
        sticky_header=(spec["sticky"] or {}).get("header"),
        sticky_cookie=(spec["sticky"] or {}).get("cookie"),
        override_header=(spec["override"] or {}).get("header"),
        fallback=spec["fallback"],
        retries=(
            Retries(retries["attempts"], frozenset(retries["on"]), retries["per_try_timeout"])
            if retries
            else Retries()
        ),
        retries_configured=retries is not None,
        timeout=spec["timeout"],
        max_body_bytes=spec["max_body_bytes"],
        shadow=(
            Shadow(
                backend=shadow["backend"],
                percent=shadow["percent"],
                methods=frozenset(shadow["methods"]),
                allow_writes=shadow["allow_writes"],
                ignore=tuple(shadow["ignore"]),
                numeric_tolerance=shadow["numeric_tolerance"],
                max_body_bytes=shadow["max_body_bytes"],
                concurrency=shadow["concurrency"],
                queue=shadow["queue"],
                timeout=shadow["timeout"],
                store_values=shadow["store_values"],
                noise=Noise(**shadow["noise"]),
            )
            if shadow
            else None
        ),
        capture=tuple(
            Capture(
                method=c["method"],
                path=c["path"],
                event=c["event"],
                aggregate=c["aggregate"],
                id=c["id"],
                payload=c["payload"],
                schema_version=c["schema_version"],
                backends=frozenset(c["backends"]) if c["backends"] else legacy,
            )
            for c in spec["capture"]
        ),
    )


def _build(doc: dict[str, Any], file: str) -> Config:
    legacy = _legacy_backends(doc["backends"])
    return Config(
        source=file,
        listen=_split_hostport(doc["listen"]),
        admin_listen=_split_hostport(doc["admin"]["listen"]),
        admin_token_env=doc["admin"]["token_env"],
        proxy=ProxySettings(
            **{**doc["proxy"], "trusted_proxies": tuple(doc["proxy"]["trusted_proxies"])}
        ),
        backends={n: _build_backend(n, b) for n, b in doc["backends"].items()},
        routes=tuple(_build_route(r, legacy) for r in doc["routes"]),
        outbox=doc["outbox"],
        kafka=doc["kafka"],
        shadow_store_url=doc["shadow_store"]["url"] if doc["shadow_store"] else None,
        istio=doc["istio"],
        raw=doc,
    )
