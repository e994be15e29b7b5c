"""The upstream transport's errors: plain data, importable by pure decisions (retry).

``kind`` names the retry condition; ``unsent`` says the request certainly never
reached the backend, so sending it again cannot repeat its effect; ``backend_fault``
says the error tells of the backend's health, so outlier ejection counts it (all but
two: a full queue is the gateway's own limit, and a kept-alive connection closed as it
was taken is the ordinary keep-alive race)::

    UpstreamError
     ├── ConnectFailure      kind="connect-failure"  unsent
     ├── PoolOverflow        kind="overflow"         unsent, no fault: too many requests wait
     ├── ResetBeforeResponse kind="reset"            the request may have reached the backend
     │    └── ClosedBeforeSending                    unsent, no fault: closed while its head
     │                                               was held
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
    #: False when the error says nothing of the backend's health (outlier ejection skips it).
    backend_fault = True


class ConnectFailure(UpstreamError):
    kind = "connect-failure"
    unsent = True


class PoolOverflow(UpstreamError):
    """Too many requests already wait for a connection to this backend."""

    kind = "overflow"
    unsent = True
    backend_fault = False


class ResetBeforeResponse(UpstreamError):
    kind = "reset"


class ClosedBeforeSending(ResetBeforeResponse):
    """The connection closed (the backend closed a kept-alive connection as it was
    taken) before the request's head, held to the loop's next turn, was written."""

    unsent = True
    backend_fault = False


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
