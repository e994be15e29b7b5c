"""Read a YAML document into plain values while remembering where each value came from.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two equal
mapping keys.  Configuration errors must name the file, line and field, so we
compose the node graph ourselves and convert it, recording the source position of
every value under its field path (``routes[0].split.legacy``).  libyaml scans and
parses when PyYAML has it (several times faster); the pure-Python parser otherwise.

Every bad file gets a :class:`DocumentError`, in bounded time and memory, because
the same code runs in the supervisor on every reload:

* the file must be UTF-8 and at most :data:`MAX_BYTES` long (decode errors name the
  byte offset, line and column; UTF-16 files are recognised by their byte order mark
  or NUL bytes);
* nesting is capped at :data:`MAX_DEPTH` levels;
* tags are refused, except the standard plain-value ones (``!!str``, ``!!int``,
  ``!!float``, ``!!bool``, ``!!null``, ``!!map``, ``!!seq``); a tagged value must
  read as its tag (``!!int "abc"`` is an error);
* anchors and aliases are allowed (to share a block such as ``retries``), but an
  alias may not contain itself, and the document *after* alias expansion may hold
  at most :data:`MAX_VALUES` values: a small "billion laughs" file is refused
  instead of being expanded;
* integers must lie within +-(2**63 - 1); dates and other YAML 1.1 oddities stay
  the text they were written as.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import yaml

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_VALUES = 100_000
MAX_INT = 2**63 - 1
_MAX_INT_TEXT = 64  # longer integer literals are refused before conversion

_CORE = "tag:yaml.org,2002:"
_MAP, _SEQ = _CORE + "map", _CORE + "seq"
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null")}
_ALLOWED_TAGS = _SCALAR_TAGS | {_MAP, _SEQ, "!"}


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


def decode(data: bytes, file: str = "<bytes>") -> str:
    """UTF-8 bytes -> text, or a :class:`DocumentError` naming the offending byte."""
    if len(data) > MAX_BYTES:
        raise DocumentError(Problem(file, None, "", _too_large(len(data))))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(
            Problem(
                file,
                Mark(1, 1),
                "",
                "the file starts with a UTF-16 byte order mark; save it as UTF-8",
            )
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DocumentError(
            Problem(
                file,
                _byte_mark(data, nul),
                "",
                f"NUL byte at offset {nul}: the file looks UTF-16 or binary; save it as UTF-8",
            )
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise DocumentError(
            Problem(
                file,
                _byte_mark(data, exc.start),
                "",
                f"not valid UTF-8: byte 0x{byte:02x} at offset {exc.start} ({exc.reason}); "
                "save the file as UTF-8",
            )
        ) from None


def _too_large(size: int) -> str:
    return f"the file is {size} bytes long; routes.yaml may be at most {MAX_BYTES} bytes"


def _byte_mark(data: bytes, offset: int) -> Mark:
    start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", errors="replace"))
    return Mark(data.count(b"\n", 0, offset) + 1, column + 1)


def _text_mark(text: str, offset: int) -> Mark:
    return Mark(text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1)


def _mark_of(node: yaml.Node | yaml.Event) -> Mark:
    start = node.start_mark
    return Mark(start.line + 1, start.column + 1) if start is not None else Mark(1, 1)


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


class _Refused(Exception):
    def __init__(self, mark: Mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Bounded(yaml.composer.Composer):
    """Composition refusing unknown tags, deep nesting and too many values."""

    depth = 0
    nodes = 0
    positions_in_bytes = False  # how a ReaderError counts its position

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = cast(Any, self).peek_event()  # the parser half of the loader
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _ALLOWED_TAGS:
            raise _Refused(
                _mark_of(event),
                f"unsupported YAML tag '{_tag_name(tag)}': routes.yaml holds plain values "
                "(allowed: !!str, !!int, !!float, !!bool, !!null, !!map, !!seq)",
            )
        if self.depth >= MAX_DEPTH:
            raise _Refused(_mark_of(event), f"exceeded the maximum nesting depth of {MAX_DEPTH}")
        self.nodes += 1
        if self.nodes > MAX_VALUES:
            raise _Refused(_mark_of(event), f"the document holds more than {MAX_VALUES} values")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _PyLoader(_Bounded, yaml.SafeLoader):
    """Pure-Python scanning and parsing."""


class _CLoader(_Bounded, yaml.CSafeLoader):
    """libyaml's scanner and parser (several times faster), composed in Python."""

    positions_in_bytes = True

    def __init__(self, text: str) -> None:
        yaml.CSafeLoader.__init__(self, text)
        yaml.composer.Composer.__init__(self)


_LOADER: type[_PyLoader] | type[_CLoader] = (
    _CLoader if getattr(yaml, "__with_libyaml__", False) else _PyLoader
)


def _compose(text: str, file: str) -> yaml.Node | None:
    loader = None
    nodes: list[yaml.Node] = []
    try:
        loader = _LOADER(text)  # the pure-Python reader checks characters here already
        while loader.check_node() and len(nodes) < 2:
            node = loader.get_node()
            if node is not None:
                nodes.append(node)
    except _Refused as exc:
        raise DocumentError(Problem(file, exc.mark, "", exc.message)) from None
    except yaml.MarkedYAMLError as exc:
        raise DocumentError(_syntax_problem(exc, file)) from None
    except yaml.reader.ReaderError as exc:
        what = f"U+{exc.character:04X}" if isinstance(exc.character, int) else "a character"
        at = (
            _byte_mark(text.encode(), exc.position)
            if _LOADER.positions_in_bytes
            else _text_mark(text, exc.position)
        )
        raise DocumentError(
            Problem(file, at, "", f"{what} is not allowed in YAML ({exc.reason})")
        ) from None
    except yaml.YAMLError as exc:
        raise DocumentError(Problem(file, None, "", f"YAML error: {exc}")) from None
    finally:
        if loader is not None:
            loader.dispose()
    if len(nodes) > 1:
        raise DocumentError(
            Problem(file, _mark_of(nodes[1]), "", "expected one YAML document, found several")
        )
    return nodes[0] if nodes else None


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark
    where = Mark(mark.line + 1, mark.column + 1) if mark is not None else None
    reason = exc.problem or str(exc)
    if exc.context:
        reason = f"{exc.context}: {reason}"
    return Problem(file, where, "", f"YAML syntax error: {reason}")


_Construct = Callable[[yaml.SafeLoader, yaml.ScalarNode], Any]
_CONSTRUCT: dict[str, _Construct] = {
    _CORE + "null": yaml.SafeLoader.construct_yaml_null,
    _CORE + "bool": yaml.SafeLoader.construct_yaml_bool,
    _CORE + "int": yaml.SafeLoader.construct_yaml_int,
    _CORE + "float": yaml.SafeLoader.construct_yaml_float,
}


class _Converter:
    """Nodes -> plain values and marks, counting values (aliases included) and depth."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.marks: dict[str, Mark] = {}
        self.keys: dict[str, Mark] = {}
        self.count = 0
        self.active: set[int] = set()  # collections being converted: a cycle if met again

    def refuse(self, node: yaml.Node, path: str, message: str) -> DocumentError:
        return DocumentError(Problem(self.file, _mark_of(node), path, message))

    def value(self, node: yaml.Node, path: str, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.refuse(
                node,
                path,
                f"the document holds more than {MAX_VALUES} values once aliases are "
                "expanded; is it an alias bomb?",
            )
        if depth > MAX_DEPTH:
            raise self.refuse(
                node, path, f"aliases exceeded the maximum nesting depth of {MAX_DEPTH}"
            )
        self.marks[path] = _mark_of(node)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            raise self.refuse(node, path, "recursive alias: a value contains itself")
        wanted = _MAP if isinstance(node, yaml.MappingNode) else _SEQ
        if node.tag != wanted:
            raise self.refuse(node, path, f"tag '{_tag_name(node.tag)}' does not fit this value")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path, depth)
            return [self.value(item, join(path, i), depth + 1) for i, item in enumerate(node.value)]
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.refuse(key_node, path, "mapping keys must be plain scalars")
            if key_node.tag == _CORE + "merge":
                raise self.refuse(key_node, path, "YAML merge keys (<<) are not supported")
            # Keys are names: take their text, so YAML 1.1's `on:`/`no:` stay strings
            # rather than turning into booleans.
            key = key_node.value
            child = join(path, key)
            if key in out:
                first = self.keys.get(child)
                at = f" (first defined on line {first.line})" if first else ""
                raise self.refuse(key_node, child, f"duplicate key '{key}'{at}")
            self.keys[child] = _mark_of(key_node)
            out[key] = self.value(value_node, child, depth + 1)
        return out

    def scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        construct = _CONSTRUCT.get(node.tag)
        if node.tag in (_MAP, _SEQ):
            raise self.refuse(node, path, f"tag '{_tag_name(node.tag)}' does not fit this value")
        if construct is None:
            # !!str, and implicit dates, "=" and "<<": keep the text as written.
            return node.value
        if node.tag == _CORE + "int" and len(node.value) > _MAX_INT_TEXT:
            raise self.refuse(node, path, f"integer too large (at most {MAX_INT})")
        try:
            value = construct(self.loader, node)
        except (ValueError, KeyError, TypeError):
            raise self.refuse(
                node, path, f'"{node.value}" is not a valid {_tag_name(node.tag)}'
            ) from None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise self.refuse(node, path, f"integer too large (at most {MAX_INT})")
        return value


def load(text: str, file: str = "<string>") -> Located:
    """Parse one YAML document into plain values and source marks.

    Raises :class:`DocumentError` for syntax errors, duplicate keys, documents that
    hold more than one YAML document, and documents beyond the limits above.
    """
    if len(text) > MAX_BYTES:  # refused before encoding a huge text
        raise DocumentError(Problem(file, None, "", _too_large(len(text))))
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate: text that never was UTF-8
        mark = _text_mark(text, exc.start)
        raise DocumentError(Problem(file, mark, "", f"not valid text: {exc.reason}")) from None
    if size > MAX_BYTES:
        raise DocumentError(Problem(file, None, "", _too_large(size)))
    root = _compose(text, file)
    if root is None:
        return Located(None, {}, {})
    converter = _Converter(yaml.SafeLoader(""), file)
    data = converter.value(root, "", 0)
    return Located(data, converter.marks, converter.keys)
