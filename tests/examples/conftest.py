"""Fixtures shared by the examples' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Broker


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A broker of the test's own, for the tests that need the service's consumers to
    join their groups (``order-service``, ``order-service-import``) and consume.  On the
    session's broker those groups carry what earlier tests' services left, and in
    combined runs the trigger test's consumers sometimes got no partition for the whole
    test: the sentinel was published (outbox all published) and never imported (no lag
    sample), and both consumers were still sending JoinGroup when the session ended."""
    broker = Broker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
