"""examples.broker: the bundled broker's command line, bootstrap parsing, the port probe."""

from __future__ import annotations

import socket

import pytest

from examples.broker import broker_argv, first_address, listening
from tests.harness import free_port


def test_broker_argv_listens_and_advertises_one_address_in_memory() -> None:
    argv = broker_argv("/bin/tansu", "127.0.0.1", 9092)
    assert argv[:2] == ["/bin/tansu", "broker"]
    assert argv[argv.index("--listener-url") + 1] == "tcp://127.0.0.1:9092"
    assert argv[argv.index("--advertised-listener-url") + 1] == "tcp://127.0.0.1:9092"
    assert argv[argv.index("--storage-engine") + 1] == "memory://tansu/"


def test_first_address_takes_the_first_of_a_list() -> None:
    assert first_address("127.0.0.1:9092") == ("127.0.0.1", 9092)
    assert first_address("kafka-1:9093, kafka-2:9093") == ("kafka-1", 9093)
    with pytest.raises(ValueError, match="kafka.bootstrap 'kafka' is not host:port"):
        first_address("kafka")


def test_listening_tells_an_open_port_from_a_closed_one() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert listening("127.0.0.1", server.getsockname()[1])
    assert not listening("127.0.0.1", free_port())
