"""The strangler command: validate's exit codes and messages, the schema export, the
not-yet-implemented commands' exit code, --version, and ``demo`` delegating to the source
checkout's examples.demo (or saying it needs one)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.cli import DEMO_NEEDS_CHECKOUT, main, version

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


def _pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def test_version_prints_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"strangler {_pyproject_version()}\n"


def test_version_falls_back_to_pyproject_when_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert version() == _pyproject_version()


def test_console_script_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"strangler {_pyproject_version()}"


def test_demo_delegates_to_the_checkouts_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    import examples.demo

    seen: list[list[str]] = []

    def fake_main(argv: Sequence[str] | None = None) -> int:
        seen.append(list(argv or []))
        return 7

    monkeypatch.setattr(examples.demo, "main", fake_main)
    assert main(["demo", "-c", "elsewhere.yaml"]) == 7
    assert seen == [["-c", "elsewhere.yaml"]]


def test_demo_outside_a_checkout_says_so_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An installed wheel has no examples package: make it unimportable here.
    monkeypatch.setitem(sys.modules, "examples", None)
    monkeypatch.setitem(sys.modules, "examples.demo", None)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err == f"strangler demo: {DEMO_NEEDS_CHECKOUT}\n"
    assert "make demo" in err
