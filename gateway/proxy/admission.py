"""Admission of one request (pure): the refusals that need no backend, and the routing
decision, from the request head alone.

:func:`admit` returns what the proxy needs to go on (the decision, the normalised
path, the body's framing and limit) or raises :class:`Refusal` with the status, the
reason the client reads and the metric label.  No I/O: the random draw and the
ejected backends are passed in, like the routing table's own inputs.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from gateway.http.downstream import Request
from gateway.proxy.generation import Generation
from gateway.proxy.paths import PathError, normalise
from gateway.proxy.routing import MEMO_PATH_BYTES, Decision, Facts, Refused
from gateway.types import Headers


class Refusal(Exception):
    """The request is answered by the gateway itself."""

    def __init__(self, status: int, reason: str, metric: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.metric = status, reason, metric


@dataclass(slots=True, init=False)
class Admitted:
    decision: Decision
    path: str  # normalised
    length: int | None  # the client's Content-Length
    chunked: bool
    limit: int  # the largest body accepted

    def __init__(
        self,
        decision: Decision,
        path: str,
        length: int | None,
        chunked: bool,
        limit: int,
    ) -> None:
        self.decision = decision
        self.path = path
        self.length = length
        self.chunked = chunked
        self.limit = limit

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


def admit(gen: Generation, request: Request, draw: float, ejected: frozenset[str]) -> Admitted:
    """Check and route one request head; raises :class:`Refusal`."""
    if request.method == "CONNECT":
        raise Refusal(405, "CONNECT is not supported", "connect")
    if not request.target.startswith(b"/"):
        raise Refusal(
            400, "absolute-form or authority-form request target refused", "absolute-form"
        )
    table = gen.table
    wanted = table.wanted_header_names
    picked: dict[str, str] = {}
    cookie = content_length = None
    chunked = False
    for name, value in request.headers:
        if name in _FRAMING:
            if name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = True
            else:
                cookie = value
        if name in wanted:
            picked[wanted[name]] = value.decode("latin-1")
    path = _normal(request.path)
    query = (
        dict(parse_qsl(request.query.decode("latin-1"), keep_blank_values=True))
        if table.needs_query and request.query
        else {}
    )
    cookies: dict[str, str] = {}
    new_user = None
    if table.wanted_cookies:
        if cookie is not None:
            cookies = parse_cookies(cookie.decode("latin-1"))
        new_user = new_user_id()
    facts = Facts(request.method, path, picked, query, cookies)
    try:
        decision = table.decide(facts, draw, request.path, ejected, new_user)
    except Refused as exc:
        raise Refusal(exc.status, exc.reason, "path") from None
    if decision is None:
        raise Refusal(404, "no route matches", "no-route")
    limit = decision.route.max_body_bytes
    if limit is None:
        limit = gen.config.proxy.max_body_bytes
    length = _length(content_length, limit)
    return Admitted(decision, path, length, chunked, limit)


_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding", b"cookie"})
_NORMAL_SIZE: Final = 4096  # raw paths whose normal form is remembered
_normals: Final[dict[bytes, str]] = {}


def _normal(raw_path: bytes) -> str:
    """The normalised path (remembered: the same paths come back); refuses what
    :func:`~gateway.proxy.paths.normalise` refuses."""
    path = _normals.get(raw_path)
    if path is None:
        try:
            path = normalise(raw_path)
        except PathError as exc:
            raise Refusal(400, str(exc), "path") from None
        if len(raw_path) <= MEMO_PATH_BYTES:
            if len(_normals) >= _NORMAL_SIZE:
                _normals.clear()
            _normals[raw_path] = path
    return path


def _length(value: bytes | None, limit: int) -> int | None:
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise Refusal(400, "invalid Content-Length", "framing") from None
    if length > limit:
        raise Refusal(413, "request body too large", "body-size")
    return length


def json_error(status: int, error: str, **fields: str) -> tuple[int, Headers, bytes]:
    """A gateway-made JSON response: status, headers, body."""
    body = json.dumps({"error": error, **fields}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return status, headers, body


def new_user_id() -> str:
    return random.getrandbits(96).to_bytes(12, "big").hex()


def parse_cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out.setdefault(name, value)
    return out
