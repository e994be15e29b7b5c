"""Test files mirror the source tree: every module ``pkg/a/b.py`` has ``tests/pkg/a/test_b.py``,
and every test file names a module (or a test-support module beside it)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "shadow", "strangler_events")


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if p.name != "__init__.py")


def test_every_module_has_a_mirrored_test_file() -> None:
    missing = []
    for package in PACKAGES:
        for module in _modules(package):
            rel = module.relative_to(ROOT)
            expected = ROOT / "tests" / rel.parent / f"test_{rel.name}"
            if not expected.exists():
                missing.append(str(expected.relative_to(ROOT)))
    assert missing == []


def test_every_test_file_names_a_module() -> None:
    orphans = []
    for package in PACKAGES:
        for test in sorted((ROOT / "tests" / package).rglob("test_*.py")):
            rel = test.relative_to(ROOT / "tests")
            name = test.name.removeprefix("test_")
            source = ROOT / rel.parent / name
            support = test.parent / name  # a test-support module (e.g. the Istio interpreter)
            if not (source.exists() or support.exists()):
                orphans.append(str(test.relative_to(ROOT)))
    assert orphans == []


def test_the_walk_is_recursive() -> None:
    assert any(len(p.relative_to(ROOT).parts) > 3 for p in _modules("gateway"))
