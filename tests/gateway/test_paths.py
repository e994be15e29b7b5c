"""Path normalisation (RFC 3986 5.2.4 and 6.2.2)."""

from __future__ import annotations

import pytest

from gateway.paths import PathError, normalise, remove_dot_segments, variants


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986 5.2.4's example
        ("/mid/content=5/../6", "/mid/6"),
        ("/a/..", "/"),
        ("/a/.", "/a/"),
        ("/../a", "/a"),
        ("/a//b", "/a//b"),
    ],
)
def test_remove_dot_segments(path: str, expected: str) -> None:
    assert remove_dot_segments(path) == expected


def test_unreserved_escapes_are_decoded_and_others_upper_cased() -> None:
    assert normalise(b"/%7Euser/%41%2f%3a") == "/~user/A%2F%3A"


def test_malformed_escape_and_relative_target_are_refused() -> None:
    with pytest.raises(PathError):
        normalise(b"/a%zz")
    with pytest.raises(PathError):
        normalise(b"a/b")


def test_variants_expose_encoded_dots_and_slashes() -> None:
    assert variants(b"/plain", "/plain") == []
    assert variants(b"/a/%2e%2e/b", normalise(b"/a/%2e%2e/b")) == ["/a/%2E%2E/b"]
    assert variants(b"/a/..%2Fb", normalise(b"/a/..%2Fb")) == ["/b"]
