"""The upstream transport's errors: plain data, importable by pure decisions (retry).

``kind`` names the retry condition; ``unsent`` says the request certainly never
reached the backend, so sending it again cannot repeat its effect; ``backend_fault``
says the error tells of the backend's health, so outlier ejection counts it (not a
wait in the gateway's own queue, the keep-alive race, or the client's own body)::

    UpstreamError
     ├── ConnectFailure      kind="connect-failure"  unsent
     ├── PoolOverflow        kind="overflow"         unsent, no fault: too many requests wait
     ├── ResetBeforeResponse kind="reset"            the request may have reached the backend
     │    └── ClosedBeforeSending                    unsent, no fault: closed while its head
     │                                               was held
     ├── UpstreamTimeout     kind="timeout"
     │    └── PoolTimeout                            unsent, no fault: the deadline passed
     │         │                                     before sending (waiting for the pool)
     │         └── DeadlineSpent                     the route's time was up before this
     │                                               attempt began: no backend was asked
     ├── ProtocolFailure     kind="protocol"         the backend spoke broken HTTP
     └── LengthMismatch      kind="length-mismatch"  no fault: a streamed body was not its
                                                     declared size (the client's)
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
    """The deadline passed while waiting for a pooled connection, or cut a connect short.
    No fault of the backend's: the requests holding the pool, and connects that time out
    on their own, are counted themselves."""

    unsent = True
    backend_fault = False


class DeadlineSpent(PoolTimeout):
    """The route's deadline passed before this attempt (a retry, a fallback) began."""


class ProtocolFailure(UpstreamError):
    kind = "protocol"


class LengthMismatch(UpstreamError):
    """A streamed request body was shorter or longer than its declared Content-Length."""

    kind = "length-mismatch"
    backend_fault = False
