"""Request path normalisation (pure).

The gateway matches routes on, and forwards, a normalised path:

* percent-encoded unreserved characters are decoded (RFC 3986 section 6.2.2.2)
  and the remaining escapes upper-cased (6.2.2.1);
* dot segments are removed (5.2.4), so ``/api/users/../admin`` is ``/api/admin``.

Two encodings could smuggle a request past a route: an encoded slash (``%2F``)
that a backend decodes into a separator, and an encoded dot segment (``%2E%2E``)
that a backend resolves.  :func:`variants` returns the other readings of a path
so that the router can refuse (400) a path whose readings match different routes.
"""

from __future__ import annotations

import re

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class PathError(ValueError):
    """The request target is not a usable origin-form path."""


def _decode_unreserved(segment: bytes, keep_dots: bool) -> bytes:
    def sub(m: re.Match[bytes]) -> bytes:
        value = int(m.group(1), 16)
        if value in _UNRESERVED and not (keep_dots and value == 0x2E):
            return bytes((value,))
        return b"%" + m.group(1).upper()

    return _ESCAPE.sub(sub, segment)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, for absolute paths."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def normalise(raw_path: bytes, keep_encoded_dots: bool = False) -> str:
    """The normalised form of a raw (still percent-encoded) origin-form path."""
    if not raw_path.startswith(b"/"):
        raise PathError("request target must be an absolute path")
    if b"%" not in raw_path:
        text = raw_path.decode("latin-1")
        return remove_dot_segments(text) if "/." in text else text
    if _BAD_ESCAPE.search(raw_path):
        raise PathError("malformed percent-encoding in path")
    decoded = _decode_unreserved(raw_path, keep_encoded_dots).decode("latin-1")
    return remove_dot_segments(decoded) if "/." in decoded else decoded


def variants(raw_path: bytes, normal: str) -> list[str]:
    """Other plausible readings of ``raw_path``, each to be routed like ``normal``.

    Empty for the common path with no escapes.
    """
    if b"%" not in raw_path:
        return []
    out: list[str] = []
    upper = raw_path.upper()
    if b"%2E" in upper:
        literal = normalise(raw_path, keep_encoded_dots=True)
        if literal != normal:
            out.append(literal)
    if "%2F" in normal or "%5C" in normal:
        slashed = normal.replace("%2F", "/").replace("%5C", "/")
        out.append(remove_dot_segments(slashed))
    return out
