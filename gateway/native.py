"""Which modules of the request path are compiled to native code, and whether the
compiled ones are current.

``scripts/compile.py`` compiles :data:`MODULES` with mypyc (the code stays plain typed
Python; mypyc turns each module into a C extension next to its source, which Python then
imports in its place).  ``make test`` and ``make demo`` compile first; without a build,
or on a platform without a C compiler, the same modules run as Python.  A compiled module
older than its source is stale: the test suite refuses to run with one
(``tests/conftest.py``) and :func:`stale` names them.

A ``@dataclass``'s generated ``__init__`` stays interpreted in a compiled module (the
decorator writes it at import time), and costs an attribute store through the generic
path per field.  Classes made per request therefore declare ``init=False`` and an
``__init__`` of their own, which compiles (:data:`PER_REQUEST`).
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent

#: the request path: framing, the connection, the proxy's decisions, the upstream client,
#: the shadow mirror's sampling and comparison, and the configuration values they all
#: read (compiled, a field is a struct read rather than a slot lookup by name)
MODULES = (
    "gateway/config/model.py",
    "gateway/http/batch.py",
    "gateway/http/connection.py",
    "gateway/http/cycle.py",
    "gateway/http/downstream.py",
    "gateway/http/exchange.py",
    "gateway/http/framing.py",
    "gateway/http/head.py",
    "gateway/http/host.py",
    "gateway/http/llhttp.py",
    "gateway/http/response.py",
    "gateway/http/server.py",
    "gateway/http/upstream.py",
    "gateway/http/upstream_connection.py",
    "gateway/metrics/registry.py",
    "gateway/proxy/admission.py",
    "gateway/proxy/call.py",
    "gateway/proxy/generation.py",
    "gateway/proxy/headers.py",
    "gateway/proxy/markers.py",
    "gateway/proxy/outlier.py",
    "gateway/proxy/proxy.py",
    "gateway/proxy/retry.py",
    "gateway/proxy/routing.py",
    "shadow/compare.py",
    "shadow/mirror.py",
    "shadow/sampling.py",
)

#: classes made once or more per proxied request, whose ``__init__`` must be native when
#: their module is (``module:class``)
PER_REQUEST = (
    "gateway.http.downstream:Request",
    "gateway.http.exchange:Exchange",
    "gateway.http.exchange:Sample",
    "gateway.http.cycle:NativeCycle",
    "gateway.http.framing:Head",
    "gateway.http.response:Head",
    "gateway.http.upstream:UpstreamRequest",
    "gateway.http.upstream_connection:BodyChunks",
    "gateway.http.upstream_connection:PooledResponse",
    "gateway.proxy.admission:Admitted",
    "gateway.proxy.call:Call",
    "gateway.proxy.headers:Outgoing",
    "gateway.proxy.retry:Attempt",
    "gateway.proxy.routing:Decision",
    "gateway.proxy.routing:Facts",
)


def builds(source: str, root: Path = ROOT) -> list[Path]:
    """The compiled extension(s) built from ``source`` (a path in :data:`MODULES`)."""
    path = root / source
    found = (path.with_name(path.stem + suffix) for suffix in EXTENSION_SUFFIXES)
    return [build for build in found if build.exists()]


def compiled(modules: tuple[str, ...] = MODULES, root: Path = ROOT) -> list[str]:
    """The modules that have a native build."""
    return [source for source in modules if builds(source, root)]


def stale(modules: tuple[str, ...] = MODULES, root: Path = ROOT) -> list[str]:
    """Compiled modules whose source changed after they were built (Python would import
    the old build, not the source)."""
    return [
        source
        for source in modules
        if any(b.stat().st_mtime < (root / source).stat().st_mtime for b in builds(source, root))
    ]


def loaded(module: ModuleType) -> bool:
    """Whether ``module`` was imported from a native build."""
    return (module.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES))


__all__ = ["MODULES", "PER_REQUEST", "ROOT", "builds", "compiled", "loaded", "stale"]
