"""The routing decision (pure): request facts + compiled table + a draw -> route and backend.

No I/O and no awaits.  The proxy gathers :class:`Facts` from the request, asks
:meth:`Table.decide`, and acts on the :class:`Decision`.

Weighted choice works on a fixed point space.  Sticky routes place a user at
``point = hash(key) * total / 2**64``; non-sticky routes at ``draw * total`` with
an injected draw in [0, 1).  Backends own consecutive intervals of that space,
*new* backends first and the legacy (fallback) backend last, so raising a new
backend's weight only ever grows its interval into legacy's: users move from
legacy to new, never back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.config import Config, Match, Route
from gateway.config.model import path_matches
from gateway.proxy.paths import normalise, routing_path, variants

HASH_SPACE: Final = 2**64
_MEMO_SIZE: Final = 4096  # raw paths whose route a table remembers
MEMO_PATH_BYTES: Final = 512  # longer paths are not remembered (a memo's memory stays bounded)


class Refused(Exception):
    """The request is refused before routing; ``status`` says how to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# Facts and Decision are made per request: slotted, not frozen (a frozen dataclass's
# __init__ costs an object.__setattr__ call per field), and with an __init__ of their own
# (see gateway/native.py: a compiled class runs it natively; the one @dataclass writes
# would stay interpreted).
@dataclass(slots=True, init=False)
class Facts:
    """What routing needs to know about a request, as plain values."""

    method: str
    path: str  # normalised
    headers: Mapping[str, str]  # lower-case names; only those the table asks for
    query: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)

    def __init__(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.query = {} if query is None else query
        self.cookies = {} if cookies is None else cookies


@dataclass(slots=True, init=False)
class Decision:
    route: Route
    backend: str
    reason: str  # "weight" | "sticky" | "override" | "ejected"
    fallback: str | None  # where to re-send a failed request, if anywhere
    set_cookie: tuple[str, str] | None = None  # (name, value) to give a new sticky user
    override_ignored: bool = False

    def __init__(
        self,
        route: Route,
        backend: str,
        reason: str,
        fallback: str | None,
        set_cookie: tuple[str, str] | None = None,
        override_ignored: bool = False,
    ) -> None:
        self.route = route
        self.backend = backend
        self.reason = reason
        self.fallback = fallback
        self.set_cookie = set_cookie
        self.override_ignored = override_ignored


@dataclass(frozen=True, slots=True)
class _Compiled:
    route: Route
    order: tuple[str, ...]  # new backends first, legacy last
    cumulative: tuple[int, ...]
    total: int
    override: str | None  # the override header's name, lower-cased
    sticky: str | None  # the sticky header's name, lower-cased


_points: Final[dict[str, int]] = {}


def sticky_point(key: str) -> int:
    """A user's fixed place in the hash space (memoised: the same users come back)."""
    point = _points.get(key)
    if point is None:
        if len(_points) >= 100_000:
            _points.clear()
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        point = _points[key] = int.from_bytes(digest, "big")
    return point


def _order(route: Route, legacy: frozenset[str]) -> tuple[tuple[str, int], ...]:
    def is_old(name: str) -> bool:
        return name == route.fallback or name in legacy

    new = [(n, w) for n, w in route.split if not is_old(n)]
    old = [(n, w) for n, w in route.split if is_old(n)]
    return tuple(new + old)


def matches(match: Match, facts: Facts) -> bool:
    if match.methods is not None and facts.method not in match.methods:
        return False
    if not path_matches(match, facts.path):
        return False
    for name, want in match.headers:
        if not want.matches(facts.headers.get(name)):
            return False
    for name, want in match.query:
        if not want.matches(facts.query.get(name)):
            return False
    return True


class Table:
    """A compiled routing table; build one per configuration."""

    def __init__(self, config: Config) -> None:
        legacy = config.legacy
        self.config = config
        self._routes: list[_Compiled] = []
        wanted: set[str] = set()
        cookies: set[str] = set()
        self.needs_query = False
        for route in config.routes:
            ordered = _order(route, legacy)
            cumulative, running = [], 0
            for _, weight in ordered:
                running += weight
                cumulative.append(running)
            self._routes.append(
                _Compiled(
                    route,
                    tuple(n for n, _ in ordered),
                    tuple(cumulative),
                    running,
                    route.override_header.lower() if route.override_header else None,
                    route.sticky_header.lower() if route.sticky_header else None,
                )
            )
            wanted.update(name for name, _ in route.match.headers)
            if route.sticky_header:
                wanted.add(route.sticky_header.lower())
            if route.override_header:
                wanted.add(route.override_header.lower())
            if route.sticky_cookie:
                cookies.add(route.sticky_cookie)
            self.needs_query = self.needs_query or bool(route.match.query)
        self.wanted_headers = frozenset(wanted)
        self.wanted_header_bytes = frozenset(h.encode("latin-1") for h in wanted)
        #: the wanted headers' names as they arrive (bytes) and as :class:`Facts` keys them
        self.wanted_header_names = {h.encode("latin-1"): h for h in wanted}
        self.wanted_cookies = frozenset(cookies)
        # Routes matching on the method and path alone: the route found for a raw path
        # is remembered (see :meth:`route_of`).
        self.path_only = not any(r.match.headers or r.match.query for r in config.routes)
        self._memo: dict[tuple[str, bytes], _Compiled | tuple[int, str] | None] = {}

    def find(self, facts: Facts) -> _Compiled | None:
        for compiled in self._routes:
            if matches(compiled.route.match, facts):
                return compiled
        return None

    def route_for_path(self, raw_path: bytes, facts: Facts) -> _Compiled | None:
        """Match on the path without its parameters (see :mod:`gateway.proxy.paths`),
        refusing paths whose other readings would match another route."""
        normal = facts.path
        path = routing_path(normal)
        if path is not normal:
            facts = Facts(facts.method, path, facts.headers, facts.query, facts.cookies)
        found = self.find(facts)
        for other in variants(raw_path, normal):
            alt = self.find(Facts(facts.method, other, facts.headers, facts.query, facts.cookies))
            if (alt.route.name if alt else None) != (found.route.name if found else None):
                raise Refused(400, "encoded path separator or dot segment changes the route")
        if path is not normal and found is not None:
            if any(rule.method == facts.method for rule in found.route.capture):
                # Capture rules match the forwarded path, which keeps its parameters.
                raise Refused(400, "path parameters (;) on a route capturing this method")
        return found

    def route_of(self, raw_path: bytes, facts: Facts) -> _Compiled | None:
        """:meth:`route_for_path`, remembered per method and raw path when no route
        matches on headers or the query (the same paths come back)."""
        if not self.path_only or len(raw_path) > MEMO_PATH_BYTES:
            return self.route_for_path(raw_path, facts)
        key = (facts.method, raw_path)
        try:
            hit = self._memo[key]
        except KeyError:
            try:
                hit = self.route_for_path(raw_path, facts)
            except Refused as exc:
                hit = (exc.status, exc.reason)
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = hit
        if type(hit) is tuple:
            raise Refused(*hit)
        return hit  # type: ignore[return-value]

    def shares(self, facts: Facts) -> tuple[str, dict[str, float]] | None:
        """The route a request takes and each backend's share of such requests (over many
        users and draws, nothing ejected); None when no route matches."""
        compiled = self.find(facts)
        if compiled is None:
            return None
        route = compiled.route
        if route.override_header:
            wanted = facts.headers.get(route.override_header.lower())
            if wanted is not None and wanted in compiled.order:
                return route.name, {wanted: 1.0}
        total = compiled.total
        return route.name, {n: w / total for n, w in route.split if w > 0}

    def decide(
        self,
        facts: Facts,
        draw: float,
        raw_path: bytes | None = None,
        ejected: frozenset[str] = frozenset(),
        new_user_id: str | None = None,
    ) -> Decision | None:
        """Choose route and backend; None when no route matches."""
        compiled = self.find(facts) if raw_path is None else self.route_of(raw_path, facts)
        if compiled is None:
            return None
        route = compiled.route
        fallback = route.fallback
        override_ignored = False
        if compiled.override is not None:
            wanted = facts.headers.get(compiled.override)
            if wanted is not None:
                if wanted in compiled.order:
                    return Decision(route, wanted, "override", _other(fallback, wanted))
                override_ignored = True
        set_cookie = None
        key = None
        if compiled.sticky is not None:
            key = facts.headers.get(compiled.sticky)
        elif route.sticky_cookie:
            key = facts.cookies.get(route.sticky_cookie)
            if key is None and new_user_id is not None:
                key = new_user_id
                set_cookie = (route.sticky_cookie, new_user_id)
        if key is not None:
            point = sticky_point(key) * compiled.total // HASH_SPACE
            reason = "sticky"
        else:
            point = int(draw * compiled.total)
            reason = "weight"
        order, cumulative = compiled.order, compiled.cumulative
        backend = order[-1]
        for i in range(len(order)):  # (an index loop compiles to native code; zip does not)
            if point < cumulative[i]:
                backend = order[i]
                break
        if backend in ejected:
            backend, reason = _replacement(compiled, backend, ejected, point), "ejected"
        return Decision(
            route, backend, reason, _other(fallback, backend), set_cookie, override_ignored
        )


def _other(fallback: str | None, backend: str) -> str | None:
    return fallback if fallback != backend else None


def _replacement(compiled: _Compiled, backend: str, ejected: frozenset[str], point: int) -> str:
    """Where an ejected backend's share goes: the fallback, else the other backends."""
    fallback = compiled.route.fallback
    if fallback is not None and fallback not in ejected:
        return fallback
    healthy = [
        (n, w)
        for n, w in zip(compiled.order, _weights(compiled), strict=True)
        if n not in ejected and w > 0
    ]
    if not healthy:
        return backend  # everything is ejected: better to try than to refuse (Envoy's panic mode)
    total = sum(w for _, w in healthy)
    scaled = point * total // max(compiled.total, 1)
    running = 0
    for name, weight in healthy:
        running += weight
        if scaled < running:
            return name
    return healthy[-1][0]


def _weights(compiled: _Compiled) -> list[int]:
    prev, out = 0, []
    for bound in compiled.cumulative:
        out.append(bound - prev)
        prev = bound
    return out


def facts_from(
    method: str,
    raw_path: bytes,
    headers: Mapping[str, str],
    query: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | None = None,
) -> Facts:
    """Build :class:`Facts` from raw request pieces (normalising the path)."""
    return Facts(method, normalise(raw_path), headers, query or {}, cookies or {})
