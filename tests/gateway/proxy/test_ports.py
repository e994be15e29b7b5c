"""The ports the proxy calls are satisfied by the real mirror and capture gate (checked by
mypy at the wiring; here: the proxy module imports neither shadow nor capture)."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.proxy as package
from gateway.capture.gate import CaptureGate, GateTicket
from gateway.proxy import ports
from shadow.mirror import Lane, Mirror


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_proxy_module_imports_shadow_or_capture() -> None:
    for module in Path(package.__file__).parent.glob("*.py"):
        bad = {n for n in _imports(module) if n.startswith(("shadow", "gateway.capture"))}
        assert bad == set(), f"{module.name} imports {bad}"


def test_implementations_have_every_port_method() -> None:
    for impl, port in (
        (Mirror, ports.Mirror),
        (Lane, ports.MirrorLane),
        (CaptureGate, ports.Capture),
        (GateTicket, ports.CaptureTicket),
    ):
        wanted = {n for n in vars(port) if not n.startswith("_")}
        assert wanted <= set(dir(impl)), f"{impl.__name__} lacks {wanted - set(dir(impl))}"
