"""``strangler reverse-sync run|status`` as real processes: killed with SIGKILL mid-stream
and started again, the sync applies every event exactly once (no gap, no double apply),
and ``status`` reports the lag."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import main
from strangler_events.database import open_database
from tests.eventually import eventually
from tests.harness import free_port
from tests.strangler_events.reverse_sync.support import monolith, order_events
from tests.strangler_events.support import publish


def sync_process(
    bootstrap: str, topic: str, legacy: str, inbox: str, metrics_port: int | None = None
) -> subprocess.Popen[bytes]:
    metrics = ["--metrics-listen", f"127.0.0.1:{metrics_port}"] if metrics_port else []
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "reverse-sync", "run"]
        + ["--bootstrap", bootstrap, "--topic", topic, "--aggregate", "order"]
        + ["--source", "order-service", "--url", f"{legacy}/api/orders/{{id}}"]
        + ["--upsert", "OrderCreated,OrderUpdated", "--delete", "OrderDeleted"]
        + ["--inbox", inbox, "--delays", "0.2,0.5,1,2,5", *metrics],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def status(bootstrap: str, topic: str, inbox: str) -> tuple[int, list[dict[str, int]]]:
    """``reverse-sync status --format json``: its exit code and its partitions (checked
    against the total it prints)."""
    args = ["reverse-sync", "status", "--bootstrap", bootstrap, "--topic", topic]
    args += ["--aggregate", "order", "--inbox", inbox, "--format", "json"]
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            return main(args)

    code = await asyncio.to_thread(run)
    shown = json.loads(out.getvalue())
    assert (shown["aggregate"], shown["group"]) == ("order", "reverse-sync-order")
    assert shown["lag"] == sum(p["lag"] for p in shown["partitions"])
    partitions: list[dict[str, int]] = shown["partitions"]
    return code, partitions


async def status_text(bootstrap: str, topic: str, inbox: str) -> tuple[int, str]:
    args = ["reverse-sync", "status", "--bootstrap", bootstrap, "--topic", topic]
    args += ["--aggregate", "order", "--inbox", inbox]
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            return main(args)

    return await asyncio.to_thread(run), out.getvalue()


async def lag_metric(port: int) -> dict[str, float]:
    """``strangler_consumer_lag`` of the reverse sync, per partition, from its /metrics."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        f"{s.labels['topic']}[{s.labels['partition']}]": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "strangler_consumer_lag" and s.labels["consumer"] == "reverse-sync-order"
    }


async def inbox_ids(dsn: str) -> int:
    db = open_database(dsn)
    try:
        async with db.transaction() as tx:
            [(n,)] = await tx.fetch(
                "SELECT count(*) FROM strangler_inbox WHERE consumer = 'reverse-sync-order'"
            )
    finally:
        await db.close()
    return int(n)


async def test_killed_mid_stream_it_resumes_with_no_gap_and_no_double_apply(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    topic = f"rk{uuid.uuid4().hex[:8]}.order"
    events, final = order_events(80, 4, deleted=4)
    total = len(events)  # 80 created + 320 updated + 4 deleted
    await publish(kafka_bootstrap, topic, events, batched=True)
    with monolith(tmp_path) as m:
        proc = sync_process(kafka_bootstrap, topic, m.url, pg_database)
        try:
            await eventually(
                lambda: m.applied() >= 100, timeout=60, interval=0.02, message="100 applied"
            )
            os.kill(proc.pid, signal.SIGKILL)  # mid-stream: some applied, most not
            proc.wait(10)
            partial = m.applied()
            assert 100 <= partial < total, partial
            code, behind = await status(kafka_bootstrap, topic, pg_database)
            left = total - await inbox_ids(pg_database)
            assert code == 1 and sum(p["lag"] for p in behind) == left
            code, text = await status_text(kafka_bootstrap, topic, pg_database)
            assert code == 1 and text.splitlines() == [
                f"reverse sync of order: {left} event(s) behind",
                *(
                    f"  {p['topic']}[{p['partition']}]  applied to {p['position']}"
                    f"  end {p['end']}  lag {p['lag']}"
                    for p in behind
                ),
            ]
            metrics_port = free_port()
            proc = sync_process(kafka_bootstrap, topic, m.url, pg_database, metrics_port)

            async def complete() -> bool:
                code, rows = await status(kafka_bootstrap, topic, pg_database)
                if code != 0:
                    raise AssertionError(f"behind: {rows}")
                return True

            await eventually(complete, timeout=90, interval=0.3, message="no lag left")

            async def metric_caught_up() -> dict[str, float]:
                lags = await lag_metric(metrics_port)
                if not lags or any(lags.values()):  # every partition seen, and caught up
                    raise AssertionError(f"strangler_consumer_lag {lags}")
                return lags

            await eventually(metric_caught_up, timeout=30, interval=0.3, message="lag metric 0")
            code, text = await status_text(kafka_bootstrap, topic, pg_database)
            assert code == 0 and "reverse sync of order: 0 event(s) behind" in text
            orders, applied = m.orders(), m.applied()
        finally:
            proc.terminate()
            proc.wait(20)
    assert applied == total  # no gap: every event's change, and each once
    assert await inbox_ids(pg_database) == total
    assert orders == final  # in per-aggregate order: each order's last state


def test_a_target_that_makes_no_sense_is_refused(capsys: object) -> None:
    args = ["reverse-sync", "run", "--bootstrap", "x:1", "--topic", "t", "--aggregate", "order"]
    args += ["--source", "s", "--url", "http://legacy/api/orders", "--inbox", "sqlite:///x.db"]
    assert main([*args, "--upsert", "OrderCreated"]) == 2


def test_an_origin_token_variable_that_is_unset_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_ORIGIN_TOKEN", raising=False)
    args = ["reverse-sync", "run", "--bootstrap", "x:1", "--topic", "t", "--aggregate", "order"]
    args += ["--source", "s", "--url", "http://legacy/api/orders/{id}", "--inbox", "sqlite:///x"]
    args += ["--upsert", "OrderCreated", "--origin-token-env", "NO_SUCH_ORIGIN_TOKEN"]
    assert main(args) == 2
    assert "NO_SUCH_ORIGIN_TOKEN" in capsys.readouterr().err
