"""The shared header type is defined once: no other module assigns its own ``Headers``."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway
from gateway.types import Headers

ROOT = Path(gateway.__file__).resolve().parents[1]


def _assigns_headers(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "Headers" for t in targets):
            return True
    return False


def test_headers_is_defined_once() -> None:
    owners = [
        str(p.relative_to(ROOT))
        for package in ("gateway", "shadow")
        for p in (ROOT / package).rglob("*.py")
        if _assigns_headers(p)
    ]
    assert owners == ["gateway/types.py"]
    assert Headers == list[tuple[bytes, bytes]]
