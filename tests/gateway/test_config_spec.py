"""The routes.yaml JSON Schema agrees with the checker on the example file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config_spec import json_schema
from gateway.yamlsource import load

ROOT = Path(__file__).resolve().parents[2]


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
