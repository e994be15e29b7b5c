"""Field-by-field comparison of two HTTP responses (pure: no I/O).

A :class:`Reply` is one side: status, headers and the body as kept.  ``compare``
returns the :class:`Difference` list between a primary and a shadow reply:

* ``status`` when the status codes differ;
* ``header:NAME`` for headers that differ, except a default noise list (date,
  server, request ids, framing) and configured ``header:NAME`` ignores; for
  ``set-cookie`` only the cookie names are compared;
* JSON bodies structurally, by JSON pointer, with array indices collapsed to
  ``*`` in the reported path (``/items/*/price``) and kinds ``value``, ``type``,
  ``missing`` (in the primary, not in the shadow), ``extra`` (the reverse),
  ``length`` (array lengths) and ``order`` (same elements, other order);
* other bodies by equality, kind ``body``, with a short excerpt around the first
  difference.

Ignore patterns are JSON pointers where ``*`` matches any key or array element;
a pattern also covers everything below it.

    >>> rules = Rules.build(["/meta"])
    >>> a = Reply(200, (), b'{"id": 1, "items": [{"p": 1}], "meta": {"t": 1}}')
    >>> b = Reply(200, (), b'{"id": 1, "items": [{"p": 2}], "meta": {"t": 2}}')
    >>> [(d.path, d.kind) for d in compare(a, b, rules)]
    [('/items/*/p', 'value')]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

# Headers that differ between any two responses, or that the gateway itself sets.
NOISY_HEADERS: Final = frozenset(
    {
        "date",
        "server",
        "x-request-id",
        "x-strangler-route",
        "x-strangler-backend",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "age",
        "expires",
        "last-modified",
        "etag",
        "via",
        "x-powered-by",
        "x-runtime",
        "traceparent",
        "tracestate",
    }
)
EXCERPT: Final = 40
VALUE_CHARS: Final = 200

Json = Any
Segment = str


@dataclass(frozen=True, slots=True)
class Reply:
    """One response as kept for comparison (header names lower-case; body None if not kept)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    kind: str
    primary: str = ""
    shadow: str = ""


@dataclass(frozen=True, slots=True)
class Rules:
    pointers: tuple[tuple[Segment, ...], ...] = ()
    headers: frozenset[str] = frozenset()
    numeric_tolerance: float = 0.0

    @classmethod
    def build(cls, ignore: Iterable[str] = (), numeric_tolerance: float = 0.0) -> Rules:
        """Rules from a route's ``shadow.ignore`` list (JSON pointers and ``header:NAME``)."""
        pointers: list[tuple[Segment, ...]] = []
        headers: set[str] = set()
        for item in ignore:
            if item.startswith("header:"):
                headers.add(item[len("header:") :].strip().lower())
            else:
                pointers.append(parse_pointer(item))
        return cls(tuple(pointers), frozenset(headers), numeric_tolerance)

    def ignores(self, segments: Sequence[Segment]) -> bool:
        for pattern in self.pointers:
            if len(pattern) <= len(segments) and all(
                p == "*" or p == s for p, s in zip(pattern, segments, strict=False)
            ):
                return True
        return False


class PointerError(ValueError):
    """An ignore pattern that is not a JSON pointer."""


def parse_pointer(pointer: str) -> tuple[Segment, ...]:
    """``/a/b~1c/*`` -> ``("a", "b/c", "*")`` (RFC 6901 escapes)."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise PointerError(f"{pointer!r} is not a JSON pointer (it must start with '/')")
    return tuple(s.replace("~1", "/").replace("~0", "~") for s in pointer[1:].split("/"))


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _show(value: Json) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def compare(primary: Reply, shadow: Reply, rules: Rules) -> list[Difference]:
    """The differences between ``primary`` and ``shadow`` (empty when they match)."""
    out: list[Difference] = []
    if primary.status != shadow.status:
        out.append(Difference("status", "status", str(primary.status), str(shadow.status)))
    bodies = primary.body is not None and shadow.body is not None
    out += _headers(primary.headers, shadow.headers, rules, bodies)
    if bodies:
        assert primary.body is not None and shadow.body is not None
        out += _bodies(primary.body, shadow.body, rules)
    return out


def _header_map(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.lower(), []).append(value)
    out = {}
    for name, values in merged.items():
        if name == "set-cookie":  # values carry session ids and expiry: compare names
            out[name] = ",".join(sorted(v.split("=", 1)[0].strip() for v in values))
        else:
            out[name] = ", ".join(values)
    return out


def _headers(
    primary: Iterable[tuple[str, str]],
    shadow: Iterable[tuple[str, str]],
    rules: Rules,
    bodies_compared: bool,
) -> list[Difference]:
    a, b = _header_map(primary), _header_map(shadow)
    skip = NOISY_HEADERS | rules.headers
    if bodies_compared:
        skip |= {"content-length"}
    out = []
    for name in sorted(a.keys() | b.keys()):
        if name in skip or a.get(name) == b.get(name):
            continue
        kind = "missing" if name not in b else "extra" if name not in a else "value"
        out.append(Difference(f"header:{name}", kind, a.get(name, ""), b.get(name, "")))
    return out


_NOT_JSON: Final = object()


def _parse(body: bytes) -> Json:
    stripped = body.lstrip()
    if not stripped or stripped[:1] not in b'{["0123456789-tfn':
        return _NOT_JSON
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def _bodies(primary: bytes, shadow: bytes, rules: Rules) -> list[Difference]:
    if primary == shadow:
        return []
    a, b = _parse(primary), _parse(shadow)
    if a is _NOT_JSON or b is _NOT_JSON:
        return [_text_difference(primary, shadow)]
    out: list[Difference] = []
    _walk(a, b, [], rules, out)
    return out


def _text_difference(primary: bytes, shadow: bytes) -> Difference:
    at = next(
        (i for i, (x, y) in enumerate(zip(primary, shadow, strict=False)) if x != y),
        min(len(primary), len(shadow)),
    )
    start = max(0, at - EXCERPT // 2)

    def excerpt(body: bytes) -> str:
        piece = body[start : start + EXCERPT].decode("utf-8", "replace")
        return f"@{at}: {piece!r}"

    return Difference("body", "body", excerpt(primary), excerpt(shadow))


def _type(value: Json) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _reported(segments: Sequence[Segment], arrays: Sequence[bool]) -> str:
    if not segments:
        return "/"
    parts = zip(segments, arrays, strict=True)
    return "".join("/*" if is_index else "/" + _escape(s) for s, is_index in parts)


def _walk(
    a: Json,
    b: Json,
    path: list[tuple[Segment, bool]],
    rules: Rules,
    out: list[Difference],
) -> None:
    segments = [s for s, _ in path]
    if rules.ignores(segments):
        return
    where = _reported(segments, [i for _, i in path])
    ta, tb = _type(a), _type(b)
    if ta != tb:
        out.append(Difference(where, "type", _show(a), _show(b)))
    elif ta == "object":
        for key in sorted(a.keys() | b.keys()):
            child = [*path, (key, False)]
            if rules.ignores([*segments, key]):
                continue
            if key not in b:
                out.append(Difference(_reported_of(child), "missing", _show(a[key]), ""))
            elif key not in a:
                out.append(Difference(_reported_of(child), "extra", "", _show(b[key])))
            else:
                _walk(a[key], b[key], child, rules, out)
    elif ta == "array":
        if len(a) != len(b):
            out.append(Difference(where, "length", str(len(a)), str(len(b))))
        elif a != b and _canonical_sorted(a) == _canonical_sorted(b):
            out.append(Difference(where, "order", _show(a), _show(b)))
            return
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _walk(x, y, [*path, (str(i), True)], rules, out)
    elif ta == "number":
        if a != b and not (rules.numeric_tolerance and _close(a, b, rules.numeric_tolerance)):
            out.append(Difference(where, "value", _show(a), _show(b)))
    elif a != b:
        out.append(Difference(where, "value", _show(a), _show(b)))


def _reported_of(path: Sequence[tuple[Segment, bool]]) -> str:
    return _reported([s for s, _ in path], [i for _, i in path])


def _close(a: float, b: float, tolerance: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance


def _canonical_sorted(items: list[Json]) -> list[str]:
    return sorted(json.dumps(x, sort_keys=True) for x in items)
