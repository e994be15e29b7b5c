"""Located YAML loading."""

from __future__ import annotations

import pytest

from gateway.yamlsource import DocumentError, Mark, load


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
