"""Request path normalisation (pure).

The gateway matches routes on, and forwards, a normalised path:

* percent-encoded unreserved characters are decoded (RFC 3986 section 6.2.2.2)
  and the remaining escapes upper-cased (6.2.2.1);
* runs of slashes are merged, as nginx does (``merge_slashes on``): ``//api/users``
  is ``/api/users``, so a doubled slash cannot step around a prefix route;
* dot segments are removed (5.2.4), so ``/api/users/../admin`` is ``/api/admin``.

Refused (400, :class:`PathError`): a target that is not an absolute path, a malformed
escape, an encoded NUL (``%00``, which C and Java backends may cut the path at), and a
backslash.  nginx and Envoy do not read ``\\`` as a separator, but the monolith behind
the gateway may (IIS does; Tomcat and many frameworks normalise it to ``/``), and
then ``/api\\users`` would reach a route other than the one the gateway chose.  No
client has a reason to send one unencoded (RFC 3986 does not allow it in a path).

Path parameters (``;name=value`` at the end of a segment) are kept in the forwarded
path, but routes are matched on the path without them (:func:`routing_path`): Tomcat
and other servlet containers drop them from each segment before resolving dot
segments, so ``/public/..;/admin`` is ``/admin`` to them, and ``/api/users;jsessionid=1``
is ``/api/users``.  Routing on that reading sends such a request where the backend
will serve it; forwarding the parameters keeps what a backend relies on them for
(URL-rewritten sessions, matrix parameters).  Refusing them would break those clients,
and nginx and Envoy serve them.  (The router refuses parameters on a route whose
capture rules cover the method, as capture matches the forwarded path.)

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
_SLASHES = re.compile(r"//+")
_PARAMETERS = re.compile(r";[^/]*")


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


def _tidy(path: str) -> str:
    """Merge runs of slashes, then remove dot segments."""
    if "//" in path:
        path = _SLASHES.sub("/", path)
    return remove_dot_segments(path) if "/." in path else path


def normalise(raw_path: bytes, keep_encoded_dots: bool = False) -> str:
    """The normalised form of a raw (still percent-encoded) origin-form path."""
    if not raw_path.startswith(b"/"):
        raise PathError("request target must be an absolute path")
    if b"\\" in raw_path:
        raise PathError("backslash in path")
    if b"%" not in raw_path:
        return _tidy(raw_path.decode("latin-1"))
    if _BAD_ESCAPE.search(raw_path):
        raise PathError("malformed percent-encoding in path")
    if b"%00" in raw_path:
        raise PathError("encoded NUL (%00) in path")
    return _tidy(_decode_unreserved(raw_path, keep_encoded_dots).decode("latin-1"))


def routing_path(normal: str) -> str:
    """The reading of a normalised path that routes match: without path parameters
    (``/a;x=1/..;/b`` is ``/b``).  ``normal`` itself when it has none."""
    if ";" not in normal:
        return normal
    return _tidy(_PARAMETERS.sub("", normal))


def variants(raw_path: bytes, normal: str) -> list[str]:
    """Other plausible readings of ``raw_path`` (as :func:`routing_path` gives them),
    each to be routed like ``normal``.

    Empty for the common path with no escapes.
    """
    if b"%" not in raw_path:
        return []
    out: list[str] = []
    upper = raw_path.upper()
    if b"%2E" in upper:
        literal = normalise(raw_path, keep_encoded_dots=True)
        if literal != normal:
            out.append(routing_path(literal))
    if "%2F" in normal or "%5C" in normal:
        slashed = normal.replace("%2F", "/").replace("%5C", "/")
        out.append(routing_path(_tidy(slashed)))
    return out
