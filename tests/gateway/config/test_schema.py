"""The declarative schema: checking, defaults and JSON Schema export."""

from __future__ import annotations

from typing import Any

from gateway.config.schema import (
    INVALID,
    Checker,
    Duration,
    Field,
    Int,
    ListOf,
    Num,
    Obj,
    Str,
    parse_duration,
)
from gateway.config.yamlsource import load

SPEC = Obj(
    {
        "name": Field(Str(), required=True),
        "size": Field(Int(minimum=1), default=3),
        "wait": Field(Duration(), default=1.0),
        "tags": Field(ListOf(Str(choices=("a", "b")))),
    }
)


def check(text: str) -> tuple[Any, list[str]]:
    source = load(text, "t.yaml")
    ck = Checker(source, "t.yaml")
    return SPEC.check(source.data, "", ck), [str(p) for p in ck.problems]


def test_defaults_and_normalised_values() -> None:
    value, problems = check("name: x\nwait: 250ms\n")
    assert problems == []
    assert value == {"name": "x", "size": 3, "wait": 0.25, "tags": None}


def test_problems_are_collected_with_locations() -> None:
    value, problems = check("nme: x\nsize: 0\ntags: [c]\n")
    assert value is INVALID
    assert problems == [
        "t.yaml:1:1: nme: unknown key 'nme' (did you mean 'name'?)",
        "t.yaml:2:7: size: expected an integer >= 1, got 0",
        't.yaml:3:8: tags[0]: expected one of a, b, got "c"',
        "t.yaml:1:1: missing required key 'name'",
    ]


def test_durations() -> None:
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("2h") == 7200
    assert parse_duration("10") is None and parse_duration("5 s") is None


def test_json_schema_export() -> None:
    schema = SPEC.json_schema()
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["tags"]["items"]["enum"] == ["a", "b"]
    assert schema["properties"]["size"]["default"] == 3


def test_numbers_must_be_finite() -> None:
    spec = Obj({"n": Field(Num(minimum=0, maximum=100))})
    for text in ("n: .nan\n", "n: .inf\n", "n: 1.0e+999\n"):
        source = load(text, "t.yaml")
        ck = Checker(source, "t.yaml")
        assert spec.check(source.data, "", ck) is INVALID
        assert "expected a finite number" in str(ck.problems[0])
