"""Whether a failed attempt is tried again, and where (pure).

Rules, after Istio/Envoy defaults (2 extra attempts on connect-failure,
refused-stream and reset):

* A request is sent again only if that cannot repeat its effect: nothing was
  sent (connect failure), or the method is idempotent and its body is still in
  hand.  A non-idempotent request whose body may have reached the backend is
  never re-sent, to that backend or to the fallback.
* A retry stays on the same backend while the route's ``retries.on`` conditions
  allow and attempts remain; then ``fallback`` gets one fresh round under the
  same rules, for failures and gateway-error statuses (502, 503, 504).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.config import Retries
from gateway.http.upstream_errors import UpstreamError

FALLBACK_STATUSES: Final = frozenset({502, 503, 504})

# Which ``retries.on`` conditions cover an error kind.
_ERROR_CONDITIONS: Final = {
    "connect-failure": frozenset({"connect-failure", "refused-stream"}),
    "reset": frozenset({"reset"}),
    "timeout": frozenset({"5xx", "gateway-error", "504"}),
    "protocol": frozenset({"5xx", "gateway-error", "502"}),
}


@dataclass(slots=True, init=False)
class Attempt:
    backend: str
    fallback: str | None
    retries_left: int
    on_fallback: bool = False

    def __init__(
        self,
        backend: str,
        fallback: str | None,
        retries_left: int,
        on_fallback: bool = False,
    ) -> None:
        self.backend = backend
        self.fallback = fallback
        self.retries_left = retries_left
        self.on_fallback = on_fallback


def status_retriable(status: int, on: frozenset[str]) -> bool:
    if status < 500:
        return False
    if "5xx" in on or str(status) in on:
        return True
    return "gateway-error" in on and status in FALLBACK_STATUSES


def next_step(
    attempt: Attempt,
    retries: Retries,
    error: UpstreamError | None,
    status: int | None,
    idempotent: bool,
    replayable: bool,
) -> Attempt | None:
    """The next attempt after ``attempt`` ended with ``error`` or ``status``; None to stop."""
    if error is None:
        if status is None or status < 500:
            return None
        safe = idempotent and replayable
        retry = status_retriable(status, retries.on)
        falls_back = status in FALLBACK_STATUSES
    else:
        safe = error.unsent or (idempotent and replayable)
        retry = bool(_ERROR_CONDITIONS.get(error.kind, frozenset()) & retries.on)
        falls_back = True
    if not safe:
        return None
    if retry and attempt.retries_left > 0:
        return Attempt(
            attempt.backend, attempt.fallback, attempt.retries_left - 1, attempt.on_fallback
        )
    if falls_back and attempt.fallback is not None and not attempt.on_fallback:
        return Attempt(attempt.fallback, None, retries.attempts, on_fallback=True)
    return None
