"""routes.yaml -> frozen :class:`Config`, or a :class:`ConfigError` listing every problem.

Pure apart from :func:`read_text` reading the file: the shape of the document is
in :mod:`gateway.config.spec`, the checks that need the whole document in
:mod:`gateway.config.checks`; this module runs them in order and builds the value
objects of :mod:`gateway.config.model` that the rest of the gateway uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.config.checks import cross_check
from gateway.config.model import (
    Backend,
    Capture,
    Config,
    Gates,
    Noise,
    Outlier,
    ProxySettings,
    Retries,
    Rollout,
    Route,
    Shadow,
    Step,
    legacy_backends,
    match_of,
)
from gateway.config.schema import INVALID, Checker
from gateway.config.spec import DOCUMENT
from gateway.config.yamlsource import MAX_BYTES, DocumentError, Problem, decode, load


class ConfigError(Exception):
    """A configuration could not be used; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def read_text(path: str | Path) -> str:
    """A routes.yaml file's text: read in bounded memory (at most one byte past the size
    limit, so ``/dev/zero`` is refused too) and decoded as UTF-8, else a ConfigError."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([Problem(str(p), None, "", f"cannot read file: {exc.strerror}")]) from exc
    try:
        return decode(data, str(p))
    except DocumentError as exc:
        raise ConfigError([exc.problem]) from exc


def load_file(path: str | Path) -> Config:
    """Read and check a routes.yaml file."""
    return parse(read_text(path), str(path))


def parse(text: str | bytes, file: str = "routes.yaml") -> Config:
    """Check a routes.yaml document (text, or UTF-8 bytes) and build its :class:`Config`."""
    try:
        source = load(decode(text, file) if isinstance(text, bytes) else text, file)
    except DocumentError as exc:
        raise ConfigError([exc.problem]) from exc
    ck = Checker(source, file)
    data = DOCUMENT.check(source.data, "", ck) if source.data is not None else None
    if source.data is None:
        ck.problem("", "the document is empty; expected a mapping with version, backends, routes")
    if data is INVALID or data is None or ck.problems:
        raise ConfigError(ck.problems)
    cross_check(data, ck)
    if ck.problems:
        raise ConfigError(ck.problems)
    return _build(data, file)


def _split_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _build_backend(name: str, spec: dict[str, Any]) -> Backend:
    url = urlsplit(spec["url"])
    k8s = spec["kubernetes"]
    outlier = spec["outlier"]
    k8s_fields = (
        {"k8s_host": k8s["host"], "k8s_port": k8s["port"], "k8s_subset": k8s["subset"]}
        if k8s
        else {}
    )
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
        max_pending=spec["max_pending"],
        host_header=spec["host_header"],
        outlier=Outlier(**outlier) if outlier is not None else None,
        **k8s_fields,
    )


def _build_shadow(shadow: dict[str, Any]) -> Shadow:
    return Shadow(
        **{
            **shadow,
            "methods": frozenset(shadow["methods"]),
            "ignore": tuple(shadow["ignore"]),
            "noise": Noise(**shadow["noise"]),
        }
    )


def _build_capture(c: dict[str, Any], legacy: frozenset[str]) -> Capture:
    return Capture(**{**c, "backends": frozenset(c["backends"]) if c["backends"] else legacy})


def _build_rollout(spec: dict[str, Any]) -> Rollout:
    gates = spec["gates"]
    error_rate, latency, shadow = gates["error_rate"], gates["latency_p99"], gates["shadow_match"]
    return Rollout(
        backend=spec["backend"],
        steps=tuple(Step(**step) for step in spec["steps"]),
        interval=spec["interval"],
        min_requests=spec["min_requests"],
        gates=Gates(
            error_rate_max=error_rate["max"],
            error_rate_max_over_legacy=error_rate["max_over_legacy"],
            latency_p99_max_ratio=latency["max_ratio"],
            shadow_match_min=shadow["min"] if shadow else None,
            shadow_min_compared=shadow["min_compared"] if shadow else Gates().shadow_min_compared,
        ),
        failures_before_rollback=spec["failures_before_rollback"],
    )


def _build_route(spec: dict[str, Any], legacy: frozenset[str]) -> Route:
    retries = spec["retries"]
    shadow = spec["shadow"]
    return Route(
        name=spec["name"],
        match=match_of(spec["match"]),
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
        shadow=_build_shadow(shadow) if shadow else None,
        capture=tuple(_build_capture(c, legacy) for c in spec["capture"]),
        rollout=_build_rollout(spec["rollout"]) if spec["rollout"] else None,
    )


def _build(doc: dict[str, Any], file: str) -> Config:
    legacy = legacy_backends({name: b["legacy"] for name, b in doc["backends"].items()})
    return Config(
        source=file,
        listen=_split_hostport(doc["listen"]),
        admin_listen=_split_hostport(doc["admin"]["listen"]),
        admin_token_env=doc["admin"]["token_env"],
        admin_metrics_token_env=doc["admin"]["metrics_token_env"],
        admin_allowed_hosts=tuple(doc["admin"]["allowed_hosts"]),
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
        rollout_store_url=doc["rollout_store"]["url"],
    )
