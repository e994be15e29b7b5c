"""Located YAML loading, and its limits: encodings, tags, aliases, nesting, integers; and a
fuzz test: any document, through ``parse``, gives a Config or a ConfigError, never a crash."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Config, ConfigError, parse, yamlsource
from gateway.config.yamlsource import MAX_BYTES, MAX_VALUES, DocumentError, Mark, decode, load


def test_values_and_keys_have_marks() -> None:
    doc = load("a:\n  b: [1, 2]\n  on: yes\n", "f.yaml")
    assert doc.data == {"a": {"b": [1, 2], "on": True}}  # the key 'on' stays a string
    assert doc.marks["a.b[1]"] == Mark(2, 10)
    assert doc.key_marks["a.on"] == Mark(3, 3)
    assert doc.mark("a.b[7]") == Mark(2, 6)  # nearest known ancestor


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(
        DocumentError, match=r"f.yaml:3:1: a: duplicate key 'a' \(first defined on line 1\)"
    ):
        load("a: 1\nb: 2\na: 3\n", "f.yaml")


def test_merge_keys_and_several_documents_are_refused() -> None:
    with pytest.raises(DocumentError, match="merge keys"):
        load("base: &b {x: 1}\nother:\n  <<: *b\n")
    with pytest.raises(DocumentError, match="one YAML document"):
        load("a: 1\n---\nb: 2\n")


def test_empty_document() -> None:
    assert load("# nothing\n").data is None


def test_aliases_share_a_block_and_are_marked_at_the_anchor() -> None:
    doc = load("a: &r {attempts: 3}\nb: *r\n", "f.yaml")
    assert doc.data == {"a": {"attempts": 3}, "b": {"attempts": 3}}
    assert doc.marks["b.attempts"] == Mark(1, 18)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [1, *a]\n", "f.yaml:1:4: a[1]: recursive alias: a value contains itself"),
        ("a: &a {b: *a}\n", "f.yaml:1:4: a.b: recursive alias: a value contains itself"),
        ("a: !x 1\n", "f.yaml:1:4: unsupported YAML tag '!x'"),
        ("a: !!float abc\n", 'f.yaml:1:4: a: "abc" is not a valid !!float'),
        ("a: !!seq {b: 1}\n", "f.yaml:1:4: a: tag '!!seq' does not fit this value"),
        ("a: -9223372036854775808\n", "f.yaml:1:4: a: integer too large (at most"),
        ("a: 0x" + "f" * 70 + "\n", "f.yaml:1:4: a: integer too large (at most"),
        ("a: \x07\n", "f.yaml:1:4: U+0007 is not allowed in YAML"),
        ("é: [1]\nb: \x07\n", "f.yaml:2:4: U+0007 is not allowed in YAML"),
        ("a: " + "[" * 100 + "]" * 100, "f.yaml:1:67: exceeded the maximum nesting depth of 64"),
        ("a: [1\n", "f.yaml:2:1: YAML syntax error: while parsing a flow sequence"),
    ],
)
def test_hostile_yaml_is_refused_with_a_position(
    text: str, message: str, parser: type[Any]
) -> None:
    with pytest.raises(DocumentError) as info:
        load(text, "f.yaml")
    assert str(info.value.problem).startswith(message)


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(DocumentError, match=r"f.yaml:2:4: not valid text: surrogates"):
        load("a: 1\nb: \ud800\n", "f.yaml")


def test_value_budget_counts_alias_expansions() -> None:
    anchor = "a: &a [" + ", ".join(["1"] * 999) + "]\n"
    fits = anchor + "b: [" + ", ".join(["*a"] * (MAX_VALUES // 1000 - 2)) + "]\n"
    assert len(load(fits).data["b"]) == MAX_VALUES // 1000 - 2
    with pytest.raises(DocumentError, match="once aliases are expanded"):
        load(anchor + "b: [" + ", ".join(["*a"] * (MAX_VALUES // 1000)) + "]\n")


def test_plain_values_and_oddities() -> None:
    data = load("a: !!str 1\nb: 2024-13-45\nc: =\nd: 0x1f\ne: !!int '7'\nf: [x, !!null y]\n").data
    assert data == {"a": "1", "b": "2024-13-45", "c": "=", "d": 31, "e": 7, "f": ["x", None]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xfe\xff\x00a", "f.yaml:1:1: the file starts with a UTF-16 byte order mark"),
        (b"a: 1\nb: \x00", "f.yaml:2:4: NUL byte at offset 8"),
        (b"a: 1\nb: \xc3\xa9\xff", "f.yaml:2:5: not valid UTF-8: byte 0xff at offset 10"),
        (b" " * (MAX_BYTES + 1), f"f.yaml: the file is {MAX_BYTES + 1} bytes long"),
    ],
)
def test_decode_names_the_offending_byte(data: bytes, message: str) -> None:
    with pytest.raises(DocumentError) as info:
        decode(data, "f.yaml")
    assert str(info.value.problem).startswith(message)


def test_decode_accepts_utf8() -> None:
    assert decode("a: é\n".encode()) == "a: é\n"


# -- fuzz: anything in, a Config or a ConfigError out, quickly -----------------------------

EXAMPLE = (Path(__file__).resolve().parents[3] / "routes.yaml").read_text()
EXAMPLE_LINES = EXAMPLE.splitlines(keepends=True)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["GET", "legacy", "/api", "10s", "127.0.0.1:1", "path:id", "{a}", "a{9}"])
)
RANDOM_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            yield from _paths(child, (*path, key))


def _mutated(path: tuple[Any, ...], new: Any) -> Any:
    doc: Any = load(EXAMPLE).data  # keeps the key `on:` a string
    if not path:
        return new
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return doc


# The example with one value replaced by random YAML.
MUTATED = st.builds(_mutated, st.sampled_from(list(_paths(load(EXAMPLE).data))), RANDOM_VALUES)
# The example with some lines dropped (often still valid) or random text spliced in.
DROPPED = st.sets(st.integers(0, len(EXAMPLE_LINES) - 1), max_size=6).map(
    lambda drop: "".join(line for i, line in enumerate(EXAMPLE_LINES) if i not in drop)
)
SPLICED = st.builds(
    lambda at, text: EXAMPLE[:at] + text + EXAMPLE[at:],
    st.integers(0, len(EXAMPLE)),
    st.text(max_size=30) | st.sampled_from(["&a ", "*a", "!foo ", "<<: ", "? ", "{", "- ", "\t"]),
)
DOCUMENTS = (
    MUTATED.map(yaml.safe_dump)
    | DROPPED
    | SPLICED
    | RANDOM_VALUES.map(yaml.safe_dump)
    | st.text(max_size=200)
    | st.binary(max_size=200)
    | st.binary(max_size=30).map(lambda b: EXAMPLE.encode() + b)
)


PARSERS = [yamlsource._LOADER, yamlsource._PyLoader]  # libyaml's if present, and pure Python


@settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(DOCUMENTS)
def test_any_document_gives_a_config_or_a_config_error(document: str | bytes) -> None:
    for loader in PARSERS:
        with patch.object(yamlsource, "_LOADER", loader):
            started = time.perf_counter()
            try:
                result = parse(document)
            except ConfigError as exc:
                assert exc.problems and all(str(p) for p in exc.problems)
            else:
                assert isinstance(result, Config)
            assert time.perf_counter() - started < 2
