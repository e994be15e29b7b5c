"""The shape of routes.yaml version 1, written once for checking and for ``validate --schema``.

Cross-references (a split naming an unknown backend, a capture outside its
route) need the whole document and live in :mod:`gateway.config.checks`.  The
defaults written here are the only ones: :mod:`gateway.config.model` reads its
dataclass defaults from these specs.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from gateway.config.schema import (
    Bool,
    Checker,
    Duration,
    Field,
    Int,
    ListOf,
    MapOf,
    Num,
    Obj,
    Str,
)
from gateway.config.spec_rollout import ROLLOUT, ROLLOUT_STORE
from strangler_events.topics import DEAD_LETTER_TOPIC

SUPPORTED_VERSIONS = (1,)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
RETRY_ON = (
    "connect-failure",
    "refused-stream",
    "reset",
    "gateway-error",
    "5xx",
    "502",
    "503",
    "504",
)
NAME = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
NAME_DESC = "a lower-case name of letters, digits and '-'"


MAX_REPEAT = 1000
# {n}, {n,}, {,m} and {n,m} repetition counts (an escaped \{ is a literal brace).
_REPEAT = re.compile(r"(?<!\\)\{(\d*)(?:,(\d*))?\}")


def _regex(text: str) -> str | None:
    for found in _REPEAT.finditer(text):
        for count in found.groups():
            if count and (len(count.lstrip("0")) > 6 or int(count) > MAX_REPEAT):
                return (
                    f"repetition count {count[:20]} in regular expression "
                    f"at position {found.start()} is above {MAX_REPEAT}"
                )
    try:
        re.compile(text)
    except re.error as exc:
        return f'invalid regular expression "{text}": {exc}'
    except (OverflowError, RecursionError, ValueError):
        return "invalid regular expression: too large or too deeply nested"
    return None


def _port_error(port: str | None, text: str) -> str | None:
    if port is not None and not 1 <= int(port) <= 65535:
        return f'expected a port between 1 and 65535, got {int(port)} in "{text}"'
    return None


def _hostport(text: str) -> str | None:
    return _port_error(text.rpartition(":")[2], text)


def _network(text: str) -> str | None:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f'expected an IP address or network such as 10.0.0.0/8, got "{text}"'
    return None


def _url(text: str) -> str | None:
    found = re.fullmatch(r"https?://[^/\s:]+(?::(\d{1,5}))?(/\S*)?", text)
    if found is None:
        return f'expected an http:// or https:// URL such as "http://127.0.0.1:9001", got "{text}"'
    port_error = _port_error(found.group(1), text)
    if port_error is not None:
        return port_error
    if text.startswith("https://"):
        return f'https backends are not supported yet, got "{text}"'
    return None


HOSTPORT = Str(
    description="host:port such as 127.0.0.1:8080", pattern=r"[^\s:]+:\d{1,5}", validate=_hostport
)
PATH = Str(description="a path starting with /", pattern=r"/\S*")
REGEX = Str(description="a regular expression", validate=_regex)
HEADER_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"


def _exact_shorthand(value: Any) -> Any:
    return {"exact": value} if isinstance(value, str) else value


VALUE_MATCH = Obj(
    {
        "exact": Field(Str()),
        "regex": Field(REGEX),
        "present": Field(Bool()),
        "absent": Field(Bool()),
    },
    description="a match such as {exact: v}, {regex: r}, {present: true} or {absent: true}",
    exactly_one_of=("exact", "regex", "present", "absent"),
    shorthand=_exact_shorthand,
)

MATCH = Obj(
    {
        "prefix": Field(PATH, doc="segment-aware unless prefix_mode: raw"),
        "exact": Field(PATH),
        "regex": Field(REGEX, doc="must match the whole path"),
        "prefix_mode": Field(Str(choices=("segment", "raw")), default="segment"),
        "methods": Field(ListOf(Str(description="an HTTP method", choices=HTTP_METHODS))),
        "headers": Field(
            MapOf(VALUE_MATCH, key_pattern=HEADER_NAME, key_description="a header name"),
            default={},
        ),
        "query": Field(
            MapOf(VALUE_MATCH, key_pattern=r"[^\s&=]+", key_description="a query parameter"),
            default={},
        ),
    },
    at_most_one_of=("prefix", "exact", "regex"),
)

OUTLIER = Obj(
    {
        "consecutive_failures": Field(Int(minimum=1), default=5),
        "base_ejection": Field(Duration(), default=30.0),
        "max_ejection": Field(Duration(), default=300.0),
        "max_ejected_percent": Field(Int(minimum=0, maximum=100), default=100),
    }
)

TIMEOUTS = Obj(
    {
        "connect": Field(Duration(), default=1.0),
        "request": Field(Duration(), default=30.0),
    }
)

KUBERNETES = Obj(
    {
        "host": Field(Str(), required=True),
        "port": Field(Int(minimum=1, maximum=65535), default=80),
        "subset": Field(Str()),
    }
)

BACKEND = Obj(
    {
        "url": Field(Str(description="an http:// URL", validate=_url), required=True),
        "legacy": Field(Bool(), default=False, doc="the monolith: writes it serves are captured"),
        "timeouts": Field(TIMEOUTS, default={}),
        "pool_size": Field(Int(minimum=1, maximum=10000), default=256),
        "max_pending": Field(
            Int(minimum=0, maximum=1_000_000),
            default=1024,
            doc="requests waiting for a pooled connection before 503 (Envoy max_pending_requests)",
        ),
        "host_header": Field(Str(choices=("preserve", "backend")), default="preserve"),
        "outlier": Field(OUTLIER),
        "kubernetes": Field(KUBERNETES),
    }
)

RETRIES = Obj(
    {
        "attempts": Field(Int(minimum=0, maximum=10), default=2),
        "on": Field(
            ListOf(Str(description="a retry condition", choices=RETRY_ON)),
            default=["connect-failure", "refused-stream", "reset"],
        ),
        "per_try_timeout": Field(Duration()),
    }
)

NOISE = Obj(
    {
        "secondary": Field(Bool(), default=False),
        "relative_threshold": Field(Num(minimum=0, maximum=1), default=0.2),
        "absolute_threshold": Field(Num(minimum=0, maximum=1), default=0.0003),
    }
)

SHADOW = Obj(
    {
        "backend": Field(Str(), required=True),
        "percent": Field(Num(minimum=0, maximum=100), default=100.0),
        "methods": Field(
            ListOf(Str(description="an HTTP method", choices=HTTP_METHODS)),
            default=list(SAFE_METHODS),
        ),
        "allow_writes": Field(Bool(), default=False),
        "ignore": Field(ListOf(Str(description="a JSON pointer or header:NAME")), default=[]),
        "numeric_tolerance": Field(Num(minimum=0), default=0.0),
        "max_body_bytes": Field(Int(minimum=0), default=1_048_576),
        "concurrency": Field(Int(minimum=1), default=16),
        "queue": Field(Int(minimum=0), default=64),
        "timeout": Field(Duration(), default=5.0),
        "store_values": Field(Bool(), default=False),
        "noise": Field(NOISE, default={}),
    }
)

CAPTURE = Obj(
    {
        "method": Field(Str(description="an HTTP method", choices=HTTP_METHODS), required=True),
        "path": Field(
            Str(description="a path template starting with /", pattern=r"/[^\s?#]*"),
            required=True,
        ),
        "event": Field(Str(description="an event type", pattern=r"[A-Za-z][\w.-]*"), required=True),
        "aggregate": Field(Str(description="an aggregate type", pattern=r"[\w.-]+"), required=True),
        "id": Field(
            Str(
                description="path:NAME, response:/pointer, request:/pointer or header:NAME",
                pattern=r"(path:\w+|response:(/\S*)?|request:(/\S*)?|header:" + HEADER_NAME + ")",
            ),
            required=True,
        ),
        "payload": Field(Str(choices=("request", "response", "both", "none")), default="both"),
        "schema_version": Field(Int(minimum=1), default=1),
        "id_type": Field(
            Str(choices=("string", "integer")),
            default="string",
            doc="integer: the id is normalised as a number (/orders/007 is order 7)",
        ),
        "backends": Field(ListOf(Str(), min_items=1)),
    }
)

ROUTE = Obj(
    {
        "name": Field(Str(description=NAME_DESC, pattern=NAME), required=True),
        "match": Field(MATCH, default=None),
        "split": Field(MapOf(Int(description="a weight", minimum=0), min_items=1), required=True),
        "sticky": Field(
            Obj(
                {"header": Field(Str(pattern=HEADER_NAME)), "cookie": Field(Str())},
                exactly_one_of=("header", "cookie"),
            )
        ),
        "override": Field(
            Obj(
                {
                    "header": Field(Str(pattern=HEADER_NAME), required=True),
                }
            )
        ),
        "fallback": Field(Str()),
        "retries": Field(RETRIES),
        "timeout": Field(Duration()),
        "max_body_bytes": Field(Int(minimum=0)),
        "shadow": Field(SHADOW),
        "capture": Field(ListOf(CAPTURE), default=[]),
        "rollout": Field(ROLLOUT),
    }
)


PROXY = Obj(
    {
        "trusted_proxies": Field(
            ListOf(Str(description="an IP network", validate=_network)), default=[]
        ),
        "route_header": Field(Str(pattern=HEADER_NAME), default="x-strangler-route"),
        "backend_header": Field(Str(pattern=HEADER_NAME), default="x-strangler-backend"),
        "response_headers": Field(Bool(), default=True),
        "max_header_bytes": Field(Int(minimum=1024), default=65536),
        "max_body_bytes": Field(Int(minimum=0), default=104_857_600),
        "replay_buffer_bytes": Field(Int(minimum=0), default=65536),
        "client_timeout": Field(Duration(), default=60.0),
        "access_log": Field(Bool(), default=False),
        "origin_token_env": Field(
            Str(pattern=r"[A-Za-z_][A-Za-z0-9_]*"),
            doc="the variable holding the reverse sync's secret: a request sending it in "
            "x-strangler-origin-token keeps x-strangler-origin (else always removed)",
        ),
    }
)


def _check_version(value: Any, path: str, ck: Checker) -> Any:
    checked = Int().check(value, path, ck)
    if isinstance(checked, int) and checked not in SUPPORTED_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        return ck.problem(path, f"unsupported version {checked} (this gateway reads {supported})")
    return checked


class _Version(Int):
    def check(self, value: Any, path: str, ck: Checker) -> Any:
        return _check_version(value, path, ck)

    def json_schema(self) -> dict[str, Any]:
        return {"const": 1, "description": "format version"}


DOCUMENT = Obj(
    {
        "version": Field(_Version(), required=True),
        "listen": Field(HOSTPORT, default="127.0.0.1:8080"),
        "admin": Field(
            Obj(
                {
                    "listen": Field(HOSTPORT, default="127.0.0.1:9901"),
                    "token_env": Field(Str(pattern=r"[A-Za-z_][A-Za-z0-9_]*")),
                    "metrics_token_env": Field(
                        Str(pattern=r"[A-Za-z_][A-Za-z0-9_]*"),
                        doc="a scrape-only token for /metrics",
                    ),
                    "allowed_hosts": Field(
                        ListOf(Str(description="a host or host:port", pattern=r"[^\s/@]+")),
                        default=[],
                        doc="Host headers accepted besides the admin listen address",
                    ),
                }
            ),
            default={},
        ),
        "proxy": Field(PROXY, default={}),
        "backends": Field(MapOf(BACKEND, key_pattern=NAME, min_items=1), required=True),
        "routes": Field(ListOf(ROUTE, min_items=1), required=True),
        "outbox": Field(
            Obj(
                {
                    "url": Field(Str(), default="sqlite:///./strangler-outbox.db"),
                    "spool": Field(Str(), default="./strangler-spool"),
                    "on_error": Field(Str(choices=("open", "reject")), default="open"),
                    "max_body_bytes": Field(Int(minimum=0), default=1_048_576),
                    "retention": Field(Duration(), default=604800.0),
                }
            ),
            default={},
        ),
        "kafka": Field(
            Obj(
                {
                    "bootstrap": Field(Str(), default="127.0.0.1:9092"),
                    "topic": Field(Str(), default="events.{aggregate}"),
                    "idempotence": Field(Bool(), default=False),
                    "dead_letter_topic": Field(Str(), default=DEAD_LETTER_TOPIC),
                }
            ),
            default={},
        ),
        "shadow_store": Field(Obj({"url": Field(Str(), required=True)})),
        "rollout_store": Field(
            ROLLOUT_STORE,
            default={},
            doc="where rollout state and weights are shared by every worker and replica",
        ),
        "istio": Field(
            Obj(
                {
                    "hosts": Field(ListOf(Str(), min_items=1), required=True),
                    "gateways": Field(ListOf(Str()), default=[]),
                    "mesh": Field(Bool(), default=False),
                    "namespace": Field(Str(), default="default"),
                }
            )
        ),
    }
)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of routes.yaml (``strangler validate --schema``)."""
    schema = DOCUMENT.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "strangler routes.yaml, version 1"
    return schema
