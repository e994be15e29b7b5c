"""``strangler events show|tail|count`` against real stores (SQLite files; one
PostgreSQL run), including paging past one page, progress on stderr, and
``tail --follow`` as a real process."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from gateway.cli import main as strangler
from strangler_events.eventstore import NewEvent, open_event_store
from strangler_events.eventstore.cli import PAGE, add_commands, format_counts

ROOT = Path(__file__).resolve().parents[3]


def run(*argv: str) -> int:
    common = argparse.ArgumentParser(add_help=False)
    parser = argparse.ArgumentParser(prog="strangler")
    add_commands(parser.add_subparsers(dest="command", required=True), common)
    args = parser.parse_args(list(argv))
    result: int = args.handler(args, None)
    return result


def fill(url: str, appends: list[tuple[str, list[NewEvent]]]) -> None:
    async def job() -> None:
        store = open_event_store(url)
        await store.init()
        try:
            for stream, events in appends:
                await store.append(stream, events)
        finally:
            await store.close()

    asyncio.run(job())


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/events.db"
    fill(
        url,
        [
            ("order-1", [NewEvent("OrderPlaced", {"total": 5}), NewEvent("OrderPaid", {})]),
            ("invoice-1", [NewEvent("InvoiceSent", {})]),
            ("order-2", [NewEvent("OrderPlaced", {"total": 7})]),
            ("order-1", [NewEvent("OrderShipped", {"by": "post"})]),
        ],
    )
    return url


def test_show_prints_a_stream_in_version_order(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("events", "show", "order-1", "--store", url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("@1  v1  ") and lines[0].endswith('OrderPlaced/1  {"total":5}')
    assert "v3" in lines[2] and lines[2].endswith('OrderShipped/1  {"by":"post"}')
    assert run("events", "show", "order-1", "--backwards", "--store", url) == 0
    assert [ln.split()[1] for ln in capsys.readouterr().out.splitlines()] == ["v3", "v2", "v1"]
    assert (
        run("events", "show", "order-1", "--from-version", "2", "--format", "json", "--store", url)
        == 0
    )
    records = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [(r["version"], r["type"]) for r in records] == [(2, "OrderPaid"), (3, "OrderShipped")]
    assert records[0]["stream"] == "order-1" and records[0]["metadata"] == {}


def test_show_of_a_missing_or_invalid_stream(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("events", "show", "order-9", "--store", url) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "order-9: no events" in captured.err
    assert run("events", "show", "order", "--store", url) == 2
    assert "strangler events show: stream name 'order' is not valid" in capsys.readouterr().err


def test_tail_prints_a_category_after_a_position(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("events", "tail", "order", "--store", url) == 0
    captured = capsys.readouterr()
    everything = captured.out.splitlines()
    assert [" ".join(ln.split()[1:3]) for ln in everything] == [
        "order-1 v1",
        "order-1 v2",
        "order-2 v1",
        "order-1 v3",
    ]
    assert "order: up to position 5 (resume with --from 5)" in captured.err
    assert run("events", "tail", "order", "--from", "3", "--store", url) == 0
    assert [ln.split()[0] for ln in capsys.readouterr().out.splitlines()] == ["@4", "@5"]
    members = []
    for member in ("0", "1"):
        assert (
            run("events", "tail", "order", "--member", member, "--size", "2", "--store", url) == 0
        )
        members.append(capsys.readouterr().out.splitlines())
    assert sorted(members[0] + members[1]) == sorted(everything)
    assert run("events", "tail", "order", "--member", "2", "--size", "2", "--store", url) == 2
    assert "member=2 size=2" in capsys.readouterr().err


def test_count_per_type(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("events", "count", "--category", "order", "--store", url) == 0
    assert capsys.readouterr().out.splitlines() == [
        "OrderPlaced   2",
        "OrderPaid     1",
        "OrderShipped  1",
        "total         4",
    ]
    assert run("events", "count", "--store", url) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "total         5"
    assert format_counts({}, "order") == ["order: no events"]


def test_long_reads_page_through_and_report_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/big.db"
    total = 2 * PAGE + 500
    fill(url, [("big-1", [NewEvent(f"T{i % 3}", {"i": i}) for i in range(total)])])
    assert run("events", "count", "--progress", "1000", "--store", url) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].split() == ["total", str(total)]
    assert captured.err.splitlines() == [
        "count all categories: 1000 events read (position 1000)",
        "count all categories: 2000 events read (position 2000)",
    ]
    assert run("events", "show", "big-1", "--progress", "2000", "--store", url) == 0
    captured = capsys.readouterr()
    versions = [int(ln.split()[1][1:]) for ln in captured.out.splitlines()]
    assert versions == list(range(1, total + 1))
    assert captured.err.splitlines() == ["show big-1: 2000 events read (position 2000)"]
    assert run("events", "show", "big-1", "--backwards", "--progress", "0", "--store", url) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == total and captured.err == ""


def test_an_unreachable_store_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("events", "count", "--store", "postgresql://nobody@127.0.0.1:1/none") == 1
    assert "strangler events count: PostgreSQL event store unreachable" in capsys.readouterr().err


@pytest.mark.postgres
def test_the_strangler_command_reads_postgresql(
    pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(pg_database, [("order-1", [NewEvent("OrderPlaced", {})])])
    assert strangler(["events", "count", "--store", pg_database]) == 0
    assert capsys.readouterr().out.splitlines() == ["OrderPlaced  1", "total        1"]


async def test_tail_follow_prints_new_events_until_interrupted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    store = open_event_store(url)
    await store.init()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "events",
        "tail",
        "order",
        "--follow",
        "--interval",
        "0.05",
        "--store",
        url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        for n in range(3):
            await store.append(f"order-{n}", [NewEvent("OrderPlaced", {"n": n})])
            # the first line also waits for the CLI to start (imports) on a busy machine
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60 if n == 0 else 15)
            assert line.decode().split()[1] == f"order-{n}"
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await store.close()
