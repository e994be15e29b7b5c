"""The demo's write half, its pure parts: the routes it reloads, the report lines it
prints, and the commands it starts.  The demo itself runs in tests/examples/test_demo.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples import demo_writes
from gateway.config import load_file, parse

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "routes.yaml").read_text()


def test_the_write_route_moves_whole_and_keeps_the_rest() -> None:
    shadowed = parse(demo_writes.moved(TEXT, "legacy", "orders-v2"))
    route = next(r for r in shadowed.routes if r.name == "orders-writes")
    assert route.split == (("legacy", 100),)
    assert route.shadow is not None and route.shadow.allow_writes
    assert route.shadow.methods == frozenset({"POST", "PUT", "PATCH", "DELETE"})
    assert route.capture == next(r for r in parse(TEXT).routes if r.name == "orders-writes").capture
    cut = parse(demo_writes.moved(TEXT, "orders-v2"))
    route = next(r for r in cut.routes if r.name == "orders-writes")
    assert route.split == (("orders-v2", 100),) and route.shadow is None
    # the other routes come through as they were (retries.on is read as a key, not a bool)
    reads = [r for r in cut.routes if r.name == "orders-reads"]
    assert reads == [r for r in parse(TEXT).routes if r.name == "orders-reads"]


def test_a_configuration_without_the_write_route_is_skipped() -> None:
    with pytest.raises(demo_writes.WritesSkipped, match="no route named 'orders-writes'"):
        demo_writes.moved(TEXT.replace("name: orders-writes", "name: other"), "legacy")


def test_the_served_copy_is_the_users_file(tmp_path: Path) -> None:
    served = demo_writes.served_copy(str(ROOT / "routes.yaml"), tmp_path)
    assert Path(served).read_text() == TEXT and Path(served).parent == tmp_path


def test_write_parity_lines_of_a_report() -> None:
    report = """\
Shadow report: ...

orders-writes  POST /api/orders  (shadow: orders-v2)
  compared 6  matched 6 (100.0%)  differing 0  errors 0  shed 0  skipped 0
  writes (dry run): same
  latency ms: ...

orders-reads  GET /api/orders  (shadow: orders-v2)
  compared 3  matched 3 (100.0%)  differing 0  errors 0  shed 0  skipped 0

orders-writes  DELETE /api/orders/{id}  (shadow: orders-v2)
  writes (dry run): different
"""
    assert demo_writes.write_parity(report) == [
        ("POST /api/orders", "same"),
        ("DELETE /api/orders/{id}", "different"),
    ]


def test_the_commands_name_the_configured_broker_topic_and_databases() -> None:
    config = load_file(str(ROOT / "routes.yaml"))
    sync = demo_writes.sync_args(config, "http://127.0.0.1:9001", "sqlite:///d/orders.db")
    assert sync[:3] == ["gateway.cli", "reverse-sync", "run"]
    pairs = dict(zip(sync[3::2], sync[4::2], strict=False))
    assert pairs["--topic"] == "events.order" and pairs["--bootstrap"] == "127.0.0.1:9092"
    assert pairs["--url"] == "http://127.0.0.1:9001/api/orders/{id}"
    assert pairs["--inbox"] == "sqlite:///d/orders.db"
    service = demo_writes.service_args(config, ("127.0.0.1", 9002), "http://l", "sqlite:///o")
    assert service[-1] == "--publish"
    assert service[service.index("--events") + 1] == str(config.outbox["url"])
    assert service[service.index("--legacy") + 1] == "http://l"
