"""Read a YAML document into plain values while remembering where each value came from.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two equal
mapping keys.  Configuration errors must name the file, line and field, so we
compose the node graph ourselves and convert it, recording the source position of
every value under its field path (``routes[0].split.legacy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in a source file."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration document."""

    file: str
    mark: Mark | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.mark is not None:
            where = f"{where}:{self.mark.line}:{self.mark.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class DocumentError(Exception):
    """The document could not be read as YAML at all."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def join(path: str, key: str | int) -> str:
    """Extend a field path: ``join("routes", 0) == "routes[0]"``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@dataclass(slots=True)
class Located:
    """Plain data plus the position of each field path in the source."""

    data: Any
    marks: dict[str, Mark]
    key_marks: dict[str, Mark]

    def mark(self, path: str, key: bool = False) -> Mark | None:
        """The position of ``path``'s value (or key), else of its nearest ancestor's value."""
        if key and path in self.key_marks:
            return self.key_marks[path]
        while path:
            if path in self.marks:
                return self.marks[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.marks.get("")


def _mark_of(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _scalar(node: yaml.ScalarNode) -> Any:
    # The safe constructor resolves YAML 1.1 scalar tags (int, float, bool, null);
    # reuse it rather than re-implementing them.  A fresh one per scalar keeps no
    # cache alive across reloads.
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _convert(
    node: yaml.Node, path: str, marks: dict[str, Mark], keys: dict[str, Mark], file: str
) -> Any:
    marks[path] = _mark_of(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise DocumentError(
                    Problem(file, _mark_of(key_node), path, "mapping keys must be plain scalars")
                )
            # Keys are names: take their text, so YAML 1.1's `on:`/`no:` stay strings
            # rather than turning into booleans.
            key = key_node.value
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise DocumentError(
                    Problem(
                        file, _mark_of(key_node), path, "YAML merge keys (<<) are not supported"
                    )
                )
            child = join(path, str(key))
            if key in out:
                first = keys.get(child)
                at = f" (first defined on line {first.line})" if first else ""
                raise DocumentError(
                    Problem(file, _mark_of(key_node), child, f"duplicate key '{key}'{at}")
                )
            keys[child] = _mark_of(key_node)
            out[key] = _convert(value_node, child, marks, keys, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, join(path, i), marks, keys, file) for i, item in enumerate(node.value)
        ]
    assert isinstance(node, yaml.ScalarNode)  # the three node kinds are exhaustive
    return _scalar(node)


def load(text: str, file: str = "<string>") -> Located:
    """Parse one YAML document into plain values and source marks.

    Raises :class:`DocumentError` for syntax errors, duplicate keys and documents
    that hold more than one YAML document.
    """
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark is not None else None
        reason = exc.problem or str(exc)
        if exc.context:
            reason = f"{exc.context}: {reason}"
        raise DocumentError(Problem(file, where, "", f"YAML syntax error: {reason}")) from exc
    except yaml.YAMLError as exc:
        raise DocumentError(Problem(file, None, "", f"YAML error: {exc}")) from exc
    if len(nodes) > 1:
        raise DocumentError(
            Problem(file, _mark_of(nodes[1]), "", "expected one YAML document, found several")
        )
    marks: dict[str, Mark] = {}
    keys: dict[str, Mark] = {}
    if not nodes or nodes[0] is None:
        return Located(None, marks, keys)
    return Located(_convert(nodes[0], "", marks, keys, file), marks, keys)
