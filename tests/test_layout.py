"""Test files mirror the source tree: every module has tests/<package>/test_<module>.py."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "shadow", "events")


def test_every_module_has_a_mirrored_test_file() -> None:
    missing = []
    for package in PACKAGES:
        for module in sorted((ROOT / package).glob("*.py")):
            if module.name == "__init__.py":
                continue
            expected = ROOT / "tests" / package / f"test_{module.name}"
            if not expected.exists():
                missing.append(str(expected.relative_to(ROOT)))
    assert missing == []


def test_every_test_file_names_a_module() -> None:
    orphans = []
    for package in PACKAGES:
        for test in sorted((ROOT / "tests" / package).glob("test_*.py")):
            if not (ROOT / package / test.name.removeprefix("test_")).exists():
                orphans.append(str(test.relative_to(ROOT)))
    assert orphans == []
