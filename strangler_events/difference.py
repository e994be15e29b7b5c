"""What differs between expected and actual events or values (pure), for the test kit
(:mod:`strangler_events.testing`) and any test that compares events.

:func:`event_mismatch` lines the two lists up by position and renders an
Expected | Actual table, marking differing rows with ``>>``, then names each differing
field path with both values::

    The events do not match the expected events: 1 differs, 1 missing
    (generated fields ignored: id, occurred_at, position, recorded_at, timestamp)

        #  Expected                   |  Actual
    >>  1  MoneyDeposited(amount=50)  |  MoneyDeposited(amount=40)
    >>  2  MoneyDeposited(amount=10)  |  (none)

      #1 data.amount: expected 50, actual 40
      #2 missing: MoneyDeposited(amount=10)

An event is seen as a dict of fields (:func:`view`): a domain event as ``type``,
``schema_version`` and ``data``; a store event, an envelope or any dataclass as its
fields; a mapping as itself.  By default the fields both sides carry are compared,
except the generated ones (:data:`GENERATED`); ``strict=True`` compares every field
of both sides, ``compare=["type", "data.amount"]`` just those paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from strangler_events.aggregate import DomainEvent, PendingEvent

GENERATED: Final = frozenset({"id", "position", "recorded_at", "occurred_at", "timestamp"})
CELL_WIDTH: Final = 48
VALUE_WIDTH: Final = 200


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs: ``path`` like ``data.amount`` or ``items[2]``."""

    path: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}expected {_show(self.expected)}, actual {_show(self.actual)}"


def view(event: object) -> dict[str, Any]:
    """``event`` as a dict of its fields (see the module docstring)."""
    if isinstance(event, PendingEvent):
        return {"id": event.id, "version": event.version, **view(event.event)}
    if isinstance(event, DomainEvent):
        return {
            "type": event.event_type,
            "schema_version": event.schema_version,
            "data": plain(event.to_data()),
        }
    if isinstance(event, Mapping):
        return {str(k): plain(v) for k, v in event.items()}
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return {f.name: plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    raise TypeError(f"cannot compare {event!r}: expected an event, a dataclass or a mapping")


def plain(value: Any) -> Any:
    """``value`` with dataclasses and mappings turned into dicts, tuples into lists."""
    if isinstance(value, DomainEvent | PendingEvent):
        return view(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def differences(expected: Any, actual: Any, path: str = "") -> list[Difference]:
    """Every leaf where ``actual`` differs from ``expected`` (both :func:`plain` values)."""
    out: list[Difference] = []
    _diff(path, expected, actual, out)
    return out


def _diff(path: str, expected: Any, actual: Any, out: list[Difference]) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in [*expected, *(k for k in actual if k not in expected)]:
            _diff(_key(path, key), expected.get(key, MISSING), actual.get(key, MISSING), out)
    elif isinstance(expected, list) and isinstance(actual, list):
        for i in range(max(len(expected), len(actual))):
            e = expected[i] if i < len(expected) else MISSING
            a = actual[i] if i < len(actual) else MISSING
            _diff(f"{path}[{i}]", e, a, out)
    elif not _same(expected, actual):
        out.append(Difference(path, expected, actual))


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) != isinstance(actual, bool):
        return False  # True == 1 in Python, but not in an event's data
    return bool(expected == actual)


def _key(path: str, key: Any) -> str:
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _at(fields: Mapping[str, Any], path: str) -> Any:
    value: Any = fields
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def _fields(
    expected: dict[str, Any], actual: dict[str, Any], strict: bool, compare: Sequence[str] | None
) -> list[str]:
    if compare is not None:
        return list(compare)
    if strict:
        return [*expected, *(k for k in actual if k not in expected)]
    return [k for k in expected if k in actual and k not in GENERATED]


def event_differences(
    expected: object,
    actual: object,
    *,
    strict: bool = False,
    compare: Sequence[str] | None = None,
) -> list[Difference]:
    """The differing fields of one event pair, by the rules of the module docstring."""
    e, a = view(expected), view(actual)
    out: list[Difference] = []
    for path in _fields(e, a, strict, compare):
        _diff(path, _at(e, path), _at(a, path), out)
    return out


def event_mismatch(
    expected: Sequence[object],
    actual: Sequence[object],
    *,
    strict: bool = False,
    compare: Sequence[str] | None = None,
    title: str = "The events do not match the expected events",
) -> str | None:
    """None when the events match, else the report of the module docstring."""
    rows: list[tuple[bool, str, str]] = []
    details: list[str] = []
    counts = {"differs": 0, "missing": 0, "extra": 0}
    compared = False  # was any pair compared field by field (else no rule to state)
    for i in range(max(len(expected), len(actual))):
        e = expected[i] if i < len(expected) else MISSING
        a = actual[i] if i < len(actual) else MISSING
        e_cell = "(none)" if e is MISSING else summary(e)
        a_cell = "(none)" if a is MISSING else summary(a)
        if a is MISSING:
            counts["missing"] += 1
            details.append(f"#{i + 1} missing: {_clip(summary(e), VALUE_WIDTH)}")
        elif e is MISSING:
            counts["extra"] += 1
            details.append(f"#{i + 1} extra: {_clip(summary(a), VALUE_WIDTH)}")
        else:
            compared = True
            found = event_differences(e, a, strict=strict, compare=compare)
            rows.append((bool(found), e_cell, a_cell))
            counts["differs"] += bool(found)
            details.extend(_explain(i + 1, found, a))
            continue
        rows.append((True, e_cell, a_cell))
    if not any(counts.values()):
        return None
    tally = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    rule = [_rule(strict, compare)] if compared else []
    lines = [f"{title}: {tally}", *rule, "", *_table(rows), ""]
    lines.extend(f"  {d}" for d in details)
    return "\n".join(lines)


def _explain(number: int, found: list[Difference], actual: object) -> list[str]:
    """One line per differing field; for another event type, the type and the whole
    actual event instead (its fields compared with another type's say little)."""
    for difference in found:
        kinds = (difference.expected, difference.actual)
        if difference.path == "type" and all(isinstance(k, str) for k in kinds):
            return [
                f"#{number} {difference}",
                f"#{number} actual: {_clip(summary(actual), VALUE_WIDTH)}",
            ]
    return [f"#{number} {d}" for d in found]


def value_mismatch(
    expected: Any, actual: Any, title: str = "The state does not match the expected state"
) -> str | None:
    """None when ``actual`` equals ``expected``, else each differing path with both values."""
    found = differences(plain(expected), plain(actual))
    if not found:
        return None
    return "\n".join([f"{title}:", *(f"  {d}" for d in found)])


def summary(event: object) -> str:
    """A one-line picture of an event: ``MoneyDeposited(amount=50)``."""
    fields = view(event)
    kind = fields.get("type")
    data = fields.get("data", fields.get("payload", MISSING))
    if not isinstance(kind, str):
        return _clip(repr(fields), VALUE_WIDTH)
    if isinstance(data, Mapping):
        return f"{kind}({', '.join(f'{k}={v!r}' for k, v in data.items())})"
    return kind if data is MISSING else f"{kind}({data!r})"


def _rule(strict: bool, compare: Sequence[str] | None) -> str:
    if compare is not None:
        return f"(compared: {', '.join(compare)})"
    if strict:
        return "(every field compared)"
    return f"(generated fields ignored: {', '.join(sorted(GENERATED))})"


def _table(rows: list[tuple[bool, str, str]]) -> list[str]:
    left = [_clip(e, CELL_WIDTH) for _, e, _ in rows]
    width = max([len("Expected"), *(len(c) for c in left)])
    number = len(str(len(rows)))
    out = [f"    {'#':>{number}}  {'Expected':<{width}}  |  Actual"]
    for i, ((differs, _, actual), cell) in enumerate(zip(rows, left, strict=True), 1):
        mark = ">>" if differs else "  "
        out.append(f"{mark}  {i:>{number}}  {cell:<{width}}  |  {_clip(actual, CELL_WIDTH)}")
    return out


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _show(value: Any) -> str:
    return _clip(repr(value), VALUE_WIDTH)
