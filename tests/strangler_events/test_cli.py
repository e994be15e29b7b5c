"""``strangler dlq list|replay`` and ``strangler reconcile`` as a user runs them."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.cli import main
from gateway.config import load_file
from strangler_events import cli as events_cli
from strangler_events.history import records
from tests.harness import UvicornThread
from tests.strangler_events.support import publish, topic
from tests.strangler_events.test_dlq import letter


async def test_dlq_list_and_replay(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dlq, original = topic(), topic()
    await publish(kafka_bootstrap, dlq, [letter("e1", original), letter("e2", original)])
    base = ["--bootstrap", kafka_bootstrap, "--topic", dlq]
    assert await asyncio.to_thread(main, ["dlq", "list", *base]) == 0
    out = capsys.readouterr().out
    assert f"e1  Thing  from {original}[0]@3  consumer g  attempts 4" in out and "boom" in out
    assert await asyncio.to_thread(main, ["dlq", "list", *base, "--format", "json"]) == 0
    assert [x["event_id"] for x in json.loads(capsys.readouterr().out)] == ["e1", "e2"]
    assert (
        await asyncio.to_thread(main, ["dlq", "replay", *base, "--id", "e2", "--id", "nope"]) == 1
    )
    captured = capsys.readouterr()
    assert "replayed 1 event(s)" in captured.out and "no dead letter with id nope" in captured.err
    assert await asyncio.to_thread(main, ["dlq", "replay", *base, "--all"]) == 0
    replayed = [
        json.loads(v or b"")["id"] async for _, _, _, v in records(kafka_bootstrap, original)
    ]
    assert replayed == ["e2", "e1", "e2"]


async def test_reconcile_command(capsys: pytest.CaptureFixture[str]) -> None:
    model = {n: {"id": n, "v": n} for n in range(1, 6)}
    model[2]["v"] = 0

    async def truth(request: Request) -> JSONResponse:
        return JSONResponse([{"id": n, "v": n} for n in range(1, 6)])

    async def read_model(request: Request) -> JSONResponse:
        return JSONResponse(list(model.values()))

    async def repair(request: Request) -> JSONResponse:
        n = int(request.path_params["id"])
        model[n] = {"id": n, "v": n}
        return JSONResponse({})

    app = Starlette(
        routes=[
            Route("/t", truth),
            Route("/m", read_model),
            Route("/r/{id:int}", repair, methods=["POST"]),
        ]
    )
    with UvicornThread(app) as s:
        args = ["reconcile", "--truth", f"{s.url}/t", "--model", f"{s.url}/m"]
        assert await asyncio.to_thread(main, args) == 1
        assert "found:    missing 0  stale 0  different 1  extra 0" in capsys.readouterr().out
        assert await asyncio.to_thread(main, [*args, "--repair", f"{s.url}/r/{{id}}"]) == 0
        out = capsys.readouterr().out
        assert "repaired: 1" in out and "after:    missing 0  stale 0  different 0" in out
        bad = ["reconcile", "--truth", f"{s.url}/nowhere", "--model", f"{s.url}/m"]
        assert await asyncio.to_thread(main, bad) == 1
        assert "404" in capsys.readouterr().err


def test_the_bootstrap_comes_from_the_hosts_kafka_settings(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "version: 1\nbackends: {legacy: {url: 'http://127.0.0.1:1'}}\n"
        "routes: [{name: all, split: {legacy: 1}}]\nkafka: {bootstrap: 'broker:9093'}\n"
    )
    config: events_cli.Config = load_file(str(path))  # the gateway's Config fits the protocol
    unset = argparse.Namespace(bootstrap=None)
    assert events_cli._bootstrap(unset, config) == "broker:9093"
    assert events_cli._bootstrap(argparse.Namespace(bootstrap="given:1"), config) == "given:1"
    assert events_cli._bootstrap(unset, None) == "127.0.0.1:9092"
