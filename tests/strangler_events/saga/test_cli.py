"""``strangler saga list|show`` on an SQLite saga store: states filtered, JSON, a
timeline; where the store is found (option, routes.yaml's outbox, the default); an
unknown id and a database without sagas fail with a message."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from strangler_events.database.factory import open_database
from strangler_events.saga.cli import DEFAULT_URL, format_list, format_timeline, store_url
from strangler_events.saga.instance import Decision, Instance
from strangler_events.saga.store import SagaStore


def instance(ident: str, state: str, reason: str | None = None) -> Instance:
    inst = Instance("checkout", ident, state, {}, 1_700_000_000.0, 1_700_000_001.5, reason=reason)
    inst.note(1_700_000_000.0, "started", type="OrderPlaced", id="e1")
    inst.note(1_700_000_000.25, "command", step="reserve", type="ReserveInventory", attempt=1)
    return inst


def always(decision: Decision) -> Callable[[Instance | None], Decision]:
    return lambda found: decision


async def _fill(url: str, *instances: Instance) -> None:
    database = open_database(url)
    store = SagaStore(database)
    await store.init()
    for inst in instances:
        await store.apply(inst.saga, inst.id, always(Decision(inst)))
    await database.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    value = f"sqlite:///{tmp_path}/sagas.db"
    asyncio.run(_fill(value, instance("o-1", "completed"), instance("o-2", "parked", "it broke")))
    return value


def test_list_filters_by_state_and_prints_json(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["saga", "list", "--state", "parked", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "o-2" in out and "o-1" not in out and "it broke" in out
    assert main(["saga", "list", "--format", "json", "--store", url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(i["id"], i["state"], i["version"]) for i in listed] == [
        ("o-1", "completed", 1),
        ("o-2", "parked", 1),
    ]


def test_show_prints_the_timeline(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["saga", "show", "o-2", "--store", url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "checkout o-2: parked (version 1) -- it broke"
    assert "+   0.250s" in out and "ReserveInventory" in out and "attempt=1" in out
    assert main(["saga", "show", "o-2", "--format", "json", "--store", url]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in shown["timeline"]] == ["started", "command"]


def test_an_unknown_id_and_a_database_without_sagas_fail(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["saga", "show", "o-9", "--store", url]) == 1
    assert "no saga instance 'o-9'" in capsys.readouterr().err
    assert main(["saga", "list", "--store", f"sqlite:///{tmp_path}/empty.db"]) == 1
    assert "strangler_saga_instances" in capsys.readouterr().err


@dataclass
class FakeConfig:
    outbox: dict[str, Any] = field(default_factory=dict)


def test_the_store_is_the_option_else_the_outbox_of_routes_yaml_else_the_default() -> None:
    given = argparse.Namespace(store="postgresql://x/y")
    assert store_url(given, FakeConfig({"url": "sqlite:///o.db"})) == "postgresql://x/y"
    none = argparse.Namespace(store=None)
    assert store_url(none, FakeConfig({"url": "sqlite:///o.db"})) == "sqlite:///o.db"
    assert store_url(none, None) == DEFAULT_URL


def test_formats_say_when_there_is_nothing() -> None:
    assert format_list([]) == ["no saga instances"]
    assert format_timeline(instance("o-3", "running"))[0] == "checkout o-3: running (version 0)"
