"""A small declarative schema for routes.yaml: one description gives both checking and JSON Schema.

Each spec checks a plain value at a field path, reports problems to a
:class:`Checker` (which turns paths into file:line:column) and returns the
normalised value (durations in seconds, defaults filled in), or ``INVALID``.
``json_schema()`` exports the same description for editors.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.config.yamlsource import Located, Problem, join


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()


class Checker:
    """Collects problems for one document, located through its source marks."""

    def __init__(self, source: Located, file: str) -> None:
        self.source = source
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str, key: bool = False) -> _Invalid:
        """Record a problem at ``path``'s value, or at its key when ``key`` is true."""
        self.problems.append(Problem(self.file, self.source.mark(path, key), path, message))
        return INVALID


def kind_of(value: Any) -> str:
    """How a YAML value reads to a user: ``'a string "x"'``, ``"a list"``..."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f'a string ("{value}")'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Spec:
    """Base of all specs."""

    description = "a value"

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def expected(self, value: Any, path: str, ck: Checker) -> _Invalid:
        return ck.problem(path, f"expected {self.description}, got {kind_of(value)}")


@dataclass
class Str(Spec):
    description: str = "a string"
    pattern: str | None = None
    choices: Sequence[str] | None = None
    validate: Callable[[str], str | None] | None = None  # returns an error message or None

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        if not isinstance(value, str):
            return self.expected(value, path, ck)
        if self.choices is not None and value not in self.choices:
            hint = _did_you_mean(value, self.choices)
            return ck.problem(
                path, f'expected one of {", ".join(self.choices)}, got "{value}"{hint}'
            )
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return ck.problem(path, f'expected {self.description}, got "{value}"')
        if self.validate is not None:
            error = self.validate(value)
            if error is not None:
                return ck.problem(path, error)
        return value

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "description": self.description}
        if self.choices is not None:
            out["enum"] = list(self.choices)
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern})$"
        return out


@dataclass
class Int(Spec):
    description: str = "an integer"
    minimum: int | None = None
    maximum: int | None = None

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return self.expected(value, path, ck)
        if self.minimum is not None and value < self.minimum:
            return ck.problem(path, f"expected {self.description} >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            return ck.problem(path, f"expected {self.description} <= {self.maximum}, got {value}")
        return value

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer", "description": self.description}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass
class Num(Spec):
    description: str = "a number"
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.expected(value, path, ck)
        if not math.isfinite(value):
            return ck.problem(path, f"expected a finite number, got {value}")
        if self.minimum is not None and value < self.minimum:
            return ck.problem(path, f"expected {self.description} >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            return ck.problem(path, f"expected {self.description} <= {self.maximum}, got {value}")
        return float(value)

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "number", "description": self.description}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass
class Bool(Spec):
    description: str = "true or false"

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        if not isinstance(value, bool):
            return self.expected(value, path, ck)
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """``"250ms"`` -> 0.25, ``"10s"`` -> 10.0, ``"1m"`` -> 60.0; None when malformed."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass
class Duration(Spec):
    description: str = "a duration such as 250ms, 10s or 1m"
    positive: bool = True

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        if not isinstance(value, str):
            return self.expected(value, path, ck)
        seconds = parse_duration(value)
        if seconds is None:
            return self.expected(value, path, ck)
        if self.positive and seconds <= 0:
            return ck.problem(path, f'expected a duration above zero, got "{value}"')
        return seconds

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": r"^\d+(\.\d+)?(ms|s|m|h)$",
            "description": self.description,
        }


@dataclass
class ListOf(Spec):
    item: Spec
    min_items: int = 0
    description: str = "a list"

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        if not isinstance(value, list):
            return self.expected(value, path, ck)
        if len(value) < self.min_items:
            return ck.problem(path, f"expected at least {self.min_items} item(s), got none")
        out = [self.item.check(v, join(path, i), ck) for i, v in enumerate(value)]
        return INVALID if any(v is INVALID for v in out) else out

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": self.item.json_schema()}
        if self.min_items:
            out["minItems"] = self.min_items
        return out


@dataclass
class MapOf(Spec):
    """A mapping whose keys are names chosen by the user (backend names, header names)."""

    value: Spec
    key_pattern: str = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
    key_description: str = "a name of letters, digits, '.', '_' or '-'"
    min_items: int = 0
    description: str = "a mapping"

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        if not isinstance(value, dict):
            return self.expected(value, path, ck)
        if len(value) < self.min_items:
            return ck.problem(path, f"expected at least {self.min_items} entry, got none")
        out: dict[str, Any] = {}
        ok = True
        for key, item in value.items():
            child = join(path, str(key))
            if not isinstance(key, str) or not re.fullmatch(self.key_pattern, key):
                ck.problem(
                    child, f"expected {self.key_description} as key, got {kind_of(key)}", key=True
                )
                ok = False
                continue
            out[key] = self.value.check(item, child, ck)
            ok = ok and out[key] is not INVALID
        return out if ok else INVALID

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "propertyNames": {"pattern": f"^(?:{self.key_pattern})$"},
            "additionalProperties": self.value.json_schema(),
        }


@dataclass
class Field:
    spec: Spec
    required: bool = False
    default: Any = None
    doc: str = ""


@dataclass
class Obj(Spec):
    """A mapping with known keys; unknown keys are errors with a 'did you mean' hint."""

    fields: Mapping[str, Field]
    description: str = "a mapping"
    exactly_one_of: Sequence[str] = ()
    at_most_one_of: Sequence[str] = ()
    extra_check: Callable[[dict[str, Any], str, Checker], None] | None = None
    shorthand: Callable[[Any], Any] | None = field(default=None)  # e.g. "10s" -> {request: "10s"}

    def check(self, value: Any, path: str, ck: Checker) -> Any:
        if self.shorthand is not None and not isinstance(value, dict):
            value = self.shorthand(value)
        if not isinstance(value, dict):
            return self.expected(value, path, ck)
        out: dict[str, Any] = {}
        ok = True
        for key, item in value.items():
            if key not in self.fields:
                hint = _did_you_mean(str(key), list(self.fields))
                ck.problem(join(path, str(key)), f"unknown key '{key}'{hint}", key=True)
                ok = False
                continue
            out[key] = self.fields[key].spec.check(item, join(path, key), ck)
            ok = ok and out[key] is not INVALID
        for name, f in self.fields.items():
            if name in value:
                continue
            if f.required:
                ck.problem(path, f"missing required key '{name}'")
                ok = False
            elif f.default == {} and isinstance(f.spec, Obj):
                # An absent section still gets its own defaults filled in.
                out[name] = f.spec.check({}, join(path, name), ck)
            else:
                out[name] = copy.deepcopy(f.default)
        for group, exact in ((self.exactly_one_of, True), (self.at_most_one_of, False)):
            if not group:
                continue
            present = [k for k in group if k in value]
            if len(present) > 1 or (exact and not present):
                names = ", ".join(group)
                got = ", ".join(present) if present else "none"
                need = "exactly one" if exact else "at most one"
                ck.problem(path, f"expected {need} of {names}, got {got}")
                ok = False
        if ok and self.extra_check is not None:
            before = len(ck.problems)
            self.extra_check(out, path, ck)
            ok = len(ck.problems) == before
        return out if ok else INVALID

    def default_of(self, name: str) -> Any:
        """The value an absent ``name`` gets (None when it has no default)."""
        return copy.deepcopy(self.fields[name].default)

    def json_schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for name, f in self.fields.items():
            sub = f.spec.json_schema()
            if f.doc:
                sub["description"] = f.doc
            if f.default is not None and not isinstance(f.default, dict | list):
                sub["default"] = f.default
            props[name] = sub
        out: dict[str, Any] = {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
        }
        required = [n for n, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        if self.exactly_one_of:
            out["oneOf"] = [{"required": [k]} for k in self.exactly_one_of]
        if self.shorthand is not None:
            return {"anyOf": [out, {"type": ["string", "integer", "boolean"]}]}
        return out


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
