"""``strangler rollout``: the admin address, the token, what an unreachable API says, and
``--mesh-out DIR`` writing the VirtualServices as a running gateway's rollout moves.
(The rollout's own steps against a running gateway are exercised in test_driver.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.config import parse
from gateway.rollout.cli import admin_url, answered_weights
from tests.gateway.support import strangler_run
from tests.harness import free_port

DOC = """\
version: 1
admin: {listen: "0.0.0.0:ADMIN"}
backends:
  legacy: {url: "http://127.0.0.1:9001"}
  v2: {url: "http://127.0.0.1:9002"}
routes:
  - name: api
    split: {legacy: 100, v2: 0}
    rollout: {backend: v2, steps: [5, 100]}
"""


def test_the_admin_address_comes_from_the_config_or_the_flag() -> None:
    config = parse(DOC.replace("ADMIN", "9901"))
    assert admin_url(config, None) == "http://127.0.0.1:9901"
    assert admin_url(config, "http://gw:1/") == "http://gw:1"


def test_an_unreachable_admin_api_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "routes.yaml"
    port = free_port()
    path.write_text(DOC.replace("ADMIN", str(port)))
    assert main(["rollout", "pause", "api", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"strangler rollout pause: cannot reach the admin API at http://127.0.0.1:{port}" in err


MESHED = """\
version: 1
backends:
  legacy:
    url: "http://127.0.0.1:PORT"
    legacy: true
    kubernetes: {host: legacy.legacy.svc.cluster.local, port: 80}
  v2:
    url: "http://127.0.0.1:PORT"
    kubernetes: {host: v2.orders.svc.cluster.local, port: 80}
routes:
  - name: api
    match: {prefix: /api}
    split: {v2: 0, legacy: 100}
    rollout: {backend: v2, steps: [5, 25, 100], interval: 1h}
  - name: rest
    split: {legacy: 100}
istio: {hosts: [api.example.com]}
rollout_store: {url: "sqlite:///STORE"}
"""


def routes_of(directory: Path) -> dict[str, list[tuple[str, Any]]]:
    """Route name -> (host, weight) of its destinations, in the one VirtualService."""
    (path,) = directory.glob("virtualservice-*.yaml")
    return {
        http["name"]: [(r["destination"]["host"], r.get("weight")) for r in http["route"]]
        for http in yaml.safe_load(path.read_text())["spec"]["http"]
    }


V2, LEGACY = "v2.orders.svc.cluster.local", "legacy.legacy.svc.cluster.local"


def test_mesh_out_writes_the_virtual_services_with_each_new_weight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MESHED.replace("PORT", str(free_port())).replace("STORE", str(tmp_path / "r.db"))
    mesh = tmp_path / "gitops"
    with strangler_run(tmp_path, text) as gw:
        config = ["-c", str(gw.config_path)]
        assert main(["rollout", "status", *config, "--mesh-out", str(mesh)]) == 0
        assert routes_of(mesh)["api"] == [(LEGACY, None)]  # not started: the file's split
        assert main(["rollout", "start", "api", *config, "--mesh-out", str(mesh)]) == 0
        assert routes_of(mesh) == {"api": [(V2, 5), (LEGACY, 95)], "rest": [(LEGACY, None)]}
        assert "virtualservice-" in capsys.readouterr().err  # says what it wrote
        # the same file strangler istio render writes from the store
        rendered = tmp_path / "k8s" / "istio"
        assert main(["istio", "render", *config, "-o", str(rendered)]) == 0
        (written,) = mesh.iterdir()
        assert written.read_text() == (rendered / written.name).read_text()
        assert main(["rollout", "pause", "api", *config]) == 0
        assert main(["rollout", "resume", "api", *config, "--mesh-out", str(mesh)]) == 0
        assert routes_of(mesh)["api"] == [(V2, 5), (LEGACY, 95)]
        assert main(["rollout", "abort", "api", *config, "--mesh-out", str(mesh)]) == 0
        assert routes_of(mesh)["api"] == [(LEGACY, None)]
        assert [p.name for p in mesh.iterdir()] == [written.name]  # one file, replaced


def test_mesh_out_says_why_it_wrote_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MESHED.replace("PORT", str(free_port())).replace("STORE", str(tmp_path / "r.db"))
    text = text.replace("istio: {hosts: [api.example.com]}\n", "")
    with strangler_run(tmp_path, text) as gw:
        args = ["rollout", "start", "api", "-c", str(gw.config_path)]
        assert main([*args, "--mesh-out", str(tmp_path / "gitops")]) == 1
    err = capsys.readouterr().err
    assert f"strangler rollout start --mesh-out {tmp_path / 'gitops'}: " in err
    assert not (tmp_path / "gitops").exists()


def test_weights_from_the_admin_answer_skip_rollouts_not_started() -> None:
    rollouts = [
        {"route": "a", "backend": "v2", "phase": "pending", "weight": 10},
        {"route": "b", "backend": "v3", "phase": "rolled_back", "weight": 0},
        {"route": "c", "backend": "v2", "phase": "progressing", "weight": 25},
    ]
    assert answered_weights(rollouts) == {"b": ("v3", 0), "c": ("v2", 25)}
