"""The strangler command: validate's exit codes and messages, the schema export, and the
not-yet-implemented commands' exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-c", str(ROOT / "routes.yaml")]) == 0
    assert "ok (3 routes, 2 backends)" in capsys.readouterr().out


def test_validate_rejects_with_location_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nbackends: {legacy: {url: 'http://x:1'}}\nroutes:\n"
        "  - {name: a, split: {legacy: 1}, tiemout: 1s}\n"
    )
    assert main(["validate", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"{bad}:4:35: routes[0].tiemout: unknown key 'tiemout' (did you mean 'timeout'?)\n"
    )


def test_config_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STRANGLER_CONFIG", str(ROOT / "routes.yaml"))
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 0


def test_schema_export_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["required"] == ["version", "backends", "routes"]
    route = schema["properties"]["routes"]["items"]
    assert route["additionalProperties"] is False
    assert "split" in route["properties"] and "capture" in route["properties"]


def test_replay_needs_an_id_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "replay", "--bootstrap", "127.0.0.1:1"]) == 2
    assert "give --id ID (repeatable) or --all" in capsys.readouterr().err


def test_console_script_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("run", "validate", "istio", "outbox", "shadow", "dlq", "reconcile", "demo"):
        assert command in out
