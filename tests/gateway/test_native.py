"""What is compiled, and whether a build is stale (gateway/native.py)."""

from __future__ import annotations

import dataclasses
import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from gateway import native

SUFFIX = EXTENSION_SUFFIXES[0]


def _tree(root: Path, built: dict[str, float]) -> tuple[str, ...]:
    """Sources a.py and b.py at mtime 1000; a build for each name in ``built`` at its mtime."""
    for name in ("a", "b"):
        (root / f"{name}.py").write_text("x = 1\n")
        os.utime(root / f"{name}.py", (1000, 1000))
    for name, mtime in built.items():
        (root / f"{name}{SUFFIX}").write_bytes(b"")
        os.utime(root / f"{name}{SUFFIX}", (mtime, mtime))
    return ("a.py", "b.py")


def test_a_build_older_than_its_source_is_stale(tmp_path: Path) -> None:
    modules = _tree(tmp_path, {"a": 900, "b": 1100})
    assert native.compiled(modules, tmp_path) == ["a.py", "b.py"]
    assert native.stale(modules, tmp_path) == ["a.py"]


def test_a_module_without_a_build_is_neither_compiled_nor_stale(tmp_path: Path) -> None:
    modules = _tree(tmp_path, {"b": 1100})
    assert native.compiled(modules, tmp_path) == ["b.py"]
    assert native.stale(modules, tmp_path) == []
    assert native.builds("a.py", tmp_path) == []


def test_every_listed_module_exists_and_is_importable() -> None:
    for source in native.MODULES:
        assert (native.ROOT / source).is_file(), source
        importlib.import_module(source.removesuffix(".py").replace("/", "."))


def test_the_request_path_runs_from_its_builds_when_they_exist() -> None:
    """``make test`` compiles first and sets STRANGLER_NATIVE=required: then every listed
    module must be imported from its build (a build Python did not pick up would leave
    the suite testing code that production does not run)."""
    required = os.environ.get("STRANGLER_NATIVE") == "required"
    for source in native.MODULES:
        module = importlib.import_module(source.removesuffix(".py").replace("/", "."))
        if required or native.builds(source):
            assert native.loaded(module), f"{source} runs as Python, not from its build"
        else:
            assert not native.loaded(module)


def test_classes_made_per_request_construct_natively_when_compiled() -> None:
    """A dataclass's generated ``__init__`` is Python code even in a compiled module;
    the classes made per request declare their own, which compiles."""
    for spec in native.PER_REQUEST:
        module_name, name = spec.split(":")
        module = importlib.import_module(module_name)
        cls = getattr(module, name)
        if dataclasses.is_dataclass(cls):  # checked compiled or not: the __init__ is its own
            params = getattr(cls, "__dataclass_params__")  # noqa: B009
            assert not params.init, f"{spec}: @dataclass writes its __init__"
        init = cls.__init__
        if native.loaded(module):
            assert not hasattr(init, "__code__"), f"{spec}: __init__ runs as Python"
        else:
            assert hasattr(init, "__code__"), f"{spec}: not a plain class"
