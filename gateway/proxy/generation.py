"""Everything the proxy derives from one configuration, built once per (re)load.

A reload swaps the proxy's :class:`Generation`; requests in flight finish on the
one they started with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gateway.config import Config
from gateway.http.host import host_for
from gateway.proxy.headers import TrustedProxies
from gateway.proxy.routing import Table


@dataclass
class Generation:
    """Everything derived from one configuration."""

    config: Config
    table: Table = field(init=False)
    trusted: TrustedProxies = field(init=False)
    route_header: bytes = field(init=False)
    backend_header: bytes = field(init=False)
    #: the Host header sent to each backend that rewrites it (``host_header: backend``)
    host_for: dict[str, bytes | None] = field(init=False)
    #: each route's and backend's name as a header value names it
    name_bytes: dict[str, bytes] = field(init=False)
    #: the reverse sync's secret (``proxy.origin_token_env``; None: none configured or set)
    origin_token: bytes | None = field(init=False)

    def __post_init__(self) -> None:
        self.table = Table(self.config)
        self.trusted = TrustedProxies(self.config.proxy.trusted_proxies)
        self.route_header = self.config.proxy.route_header.lower().encode()
        self.backend_header = self.config.proxy.backend_header.lower().encode()
        self.host_for = {n: host_for(b) for n, b in self.config.backends.items()}
        names = [*self.config.backends, *[r.name for r in self.config.routes]]
        self.name_bytes = {name: name.encode() for name in names}
        variable = self.config.proxy.origin_token_env
        token = os.environ.get(variable, "") if variable else ""
        self.origin_token = token.encode() if token else None
