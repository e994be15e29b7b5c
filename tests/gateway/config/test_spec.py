"""The routes.yaml spec: its JSON Schema agrees with the checker on the example file, and its
value checks refuse regexes and ports that would fail at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config.spec import HOSTPORT, REGEX, json_schema
from gateway.config.yamlsource import load

ROOT = Path(__file__).resolve().parents[3]


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """A small JSON Schema subset (what config_spec emits)."""
    if "anyOf" in schema:
        return any(conforms(value, s) for s in schema["anyOf"])
    if "const" in schema:
        return bool(value == schema["const"])
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return False
        props = schema.get("properties")
        if props is not None:
            unknown = any(k not in props for k in value)
            if unknown or any(k not in value for k in schema.get("required", [])):
                return False
            return all(conforms(v, props[k]) for k, v in value.items())
        return all(conforms(v, schema["additionalProperties"]) for v in value.values())
    if kind == "array":
        return isinstance(value, list) and all(conforms(v, schema["items"]) for v in value)
    if kind == "string":
        return isinstance(value, str) and ("enum" not in schema or value in schema["enum"])
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float)
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(kind, list):
        return True
    return True


def test_example_conforms_to_exported_schema() -> None:
    doc = load((ROOT / "routes.yaml").read_text()).data  # keeps the key `on:` a string
    assert conforms(doc, json_schema())


def test_schema_rejects_an_unknown_key() -> None:
    doc = load((ROOT / "routes.yaml").read_text()).data  # keeps the key `on:` a string
    doc["routes"][0]["tiemout"] = "1s"
    assert not conforms(doc, json_schema())


@pytest.mark.parametrize(
    ("regex", "error"),
    [
        ("/a{1000}", None),
        ("/a{2,1000}", None),
        (r"/a\{5000}", None),  # an escaped brace is a literal
        ("/a{1001}", "repetition count 1001 in regular expression at position 2 is above 1000"),
        ("/a{,99999}", "repetition count 99999"),
        ("/a{99999999999}", "repetition count 99999999999"),
        ("/(" + "(?:" * 5000 + "a" + ")" * 5000 + ")", "too large or too deeply nested"),
        ("/(a", "missing ), unterminated subpattern"),
    ],
)
def test_regexes_are_checked_before_compiling(regex: str, error: str | None) -> None:
    problem = REGEX.validate(regex) if REGEX.validate is not None else "no validator"
    assert (problem is None) if error is None else (problem is not None and error in problem)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("127.0.0.1:1", True), ("h:65535", True), ("h:0", False), ("h:65536", False)],
)
def test_listen_ports_are_in_range(value: str, ok: bool) -> None:
    assert (HOSTPORT.validate is not None and HOSTPORT.validate(value) is None) is ok
