"""The upstream transport's errors: plain data, importable by pure decisions (retry).

``kind`` names the retry condition; ``unsent`` says the request certainly never
reached the backend, so sending it again cannot repeat its effect::

    UpstreamError
     ├── ConnectFailure      kind="connect-failure"  unsent
     ├── PoolOverflow        kind="overflow"         unsent: too many requests wait already
     ├── ResetBeforeResponse kind="reset"            the request may have reached the backend
     │    └── ClosedBeforeSending                    unsent: closed while its head was held
     ├── UpstreamTimeout     kind="timeout"
     │    └── PoolTimeout                            unsent: the deadline passed before sending
     ├── ProtocolFailure     kind="protocol"         the backend spoke broken HTTP
     └── LengthMismatch      kind="length-mismatch"  a streamed body was not its declared size
"""

from __future__ import annotations


class UpstreamError(Exception):
    kind = "error"
    #: True when the request certainly never reached the backend.
    unsent = False


class ConnectFailure(UpstreamError):
    kind = "connect-failure"
    unsent = True


class PoolOverflow(UpstreamError):
    """Too many requests already wait for a connection to this backend."""

    kind = "overflow"
    unsent = True


class ResetBeforeResponse(UpstreamError):
    kind = "reset"


class ClosedBeforeSending(ResetBeforeResponse):
    """The connection closed (the backend closed a kept-alive connection as it was
    taken) before the request's head, held to the loop's next turn, was written."""

    unsent = True


class UpstreamTimeout(UpstreamError):
    kind = "timeout"


class PoolTimeout(UpstreamTimeout):
    """The deadline passed while waiting for a pooled connection or connecting."""

    unsent = True


class ProtocolFailure(UpstreamError):
    kind = "protocol"


class LengthMismatch(UpstreamError):
    """A streamed request body was shorter or longer than its declared Content-Length."""

    kind = "length-mismatch"
