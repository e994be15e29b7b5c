"""The upstream errors' kinds and what they promise about the request having been sent."""

from __future__ import annotations

from gateway.http import upstream_errors as e


def test_only_errors_raised_before_sending_claim_the_request_unsent() -> None:
    unsent = {
        cls.__name__
        for cls in vars(e).values()
        if isinstance(cls, type) and issubclass(cls, e.UpstreamError) and cls.unsent
    }
    assert unsent == {
        "ClosedBeforeSending",
        "ConnectFailure",
        "DeadlineSpent",
        "PoolOverflow",
        "PoolTimeout",
    }


def test_a_pool_timeout_is_a_timeout_to_whoever_maps_kinds() -> None:
    error = e.PoolTimeout("no connection came free in time")
    assert isinstance(error, e.UpstreamTimeout) and error.kind == "timeout" and error.unsent
    kinds = [e.ConnectFailure.kind, e.PoolOverflow.kind, e.ResetBeforeResponse.kind]
    kinds += [e.UpstreamTimeout.kind, e.ProtocolFailure.kind, e.LengthMismatch.kind]
    assert len(set(kinds)) == len(kinds)


def test_only_errors_that_tell_of_the_backends_health_are_its_fault() -> None:
    blameless = {
        cls.__name__
        for cls in vars(e).values()
        if isinstance(cls, type) and issubclass(cls, e.UpstreamError) and not cls.backend_fault
    }
    # the gateway's own queue, the keep-alive race, an attempt never begun, the client's body
    assert blameless == {
        "ClosedBeforeSending",
        "DeadlineSpent",
        "LengthMismatch",
        "PoolOverflow",
        "PoolTimeout",
    }
    assert e.ResetBeforeResponse.backend_fault and e.UpstreamTimeout.backend_fault
    assert e.ConnectFailure.backend_fault and e.ProtocolFailure.backend_fault
