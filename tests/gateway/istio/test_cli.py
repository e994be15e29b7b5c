"""``strangler istio render | import`` on real files, the repository's own k8s/ kept up
to date, and ``kubectl kustomize k8s/`` when kubectl is installed."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.config import load_file
from gateway.rollout.machine import State
from gateway.rollout.store.sqlite import SqliteRollouts

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = Path(__file__).parent / "samples"


def copy_routes(tmp: Path) -> Path:
    routes = tmp / "routes.yaml"
    routes.write_text((ROOT / "routes.yaml").read_text())
    return routes


def test_render_writes_files_and_check_finds_them_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = copy_routes(tmp_path)
    out = tmp_path / "k8s" / "istio"
    assert main(["istio", "render", "-c", str(routes), "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "kustomization.yaml" in names
    assert any(n.startswith("virtualservice-") for n in names)
    assert "warning: not in the mesh: route orders-reads: sticky split" in capsys.readouterr().err
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        n for n in names if n != "kustomization.yaml"
    )
    # the pods' configuration: all interfaces, backends at their Kubernetes addresses
    cluster = load_file(tmp_path / "k8s" / "routes.yaml")
    assert cluster.listen == ("0.0.0.0", 8080)
    assert cluster.backends["orders-v2"].host == "order-service.orders.svc.cluster.local"
    assert main(["istio", "render", "-c", str(routes), "-o", str(out), "--check"]) == 0


def test_check_fails_with_a_diff_when_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = copy_routes(tmp_path)
    out = tmp_path / "k8s" / "istio"
    assert main(["istio", "render", "-c", str(routes), "-o", str(out)]) == 0
    routes.write_text(
        routes.read_text().replace("orders-v2: 20, legacy: 80", "orders-v2: 50, legacy: 50")
    )
    (out / "virtualservice-old.yaml").write_text("kind: VirtualService\n")
    capsys.readouterr()
    assert main(["istio", "render", "-c", str(routes), "-o", str(out), "--check"]) == 1
    captured = capsys.readouterr()
    assert "-      weight: 20" in captured.out and "+      weight: 50" in captured.out
    assert "virtualservice-old.yaml: not rendered from the configuration any more" in captured.out
    assert "is stale: run strangler istio render" in captured.err
    assert main(["istio", "render", "-c", str(routes), "-o", str(out)]) == 0
    assert not (out / "virtualservice-old.yaml").exists()


def test_render_refuses_backends_without_kubernetes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "version: 1\nbackends:\n  legacy: {url: 'http://127.0.0.1:1'}\n"
        "routes:\n  - {name: all, split: {legacy: 1}}\nistio: {hosts: [a]}\n"
    )
    assert main(["istio", "render", "-c", str(routes), "-o", str(tmp_path / "out")]) == 2
    assert "backends.legacy: no kubernetes host" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


ROLLING = """\
version: 1
backends:
  legacy:
    url: "http://127.0.0.1:9001"
    legacy: true
    kubernetes: {host: legacy.legacy.svc.cluster.local, port: 80}
  v2:
    url: "http://127.0.0.1:9002"
    kubernetes: {host: v2.orders.svc.cluster.local, port: 80}
routes:
  - name: api
    match: {prefix: /api}
    split: {v2: 10, legacy: 90}
    rollout: {backend: v2, steps: [5, 25, 100]}
istio: {hosts: [api.example.com]}
rollout_store: {url: "sqlite:///STORE"}
"""


def store_weight(path: Path, weight: int) -> None:
    """The rollout of route api in the SQLite store at ``path``, at ``weight``."""

    async def put() -> None:
        store = SqliteRollouts(f"sqlite:///{path}")
        await store.init()
        await store.put(State("api", "v2", "progressing", step=1, weight=weight), 0)
        await store.close()

    asyncio.run(put())


def destinations(directory: Path) -> list[tuple[str, Any]]:
    """(host, weight) of each destination of the one VirtualService in ``directory``."""
    (path,) = directory.glob("virtualservice-*.yaml")
    (http,) = yaml.safe_load(path.read_text())["spec"]["http"]
    return [(r["destination"]["host"], r.get("weight")) for r in http["route"]]


def test_render_uses_the_rollouts_current_weights_unless_told_not_to(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROLLING.replace("STORE", str(tmp_path / "rollout.db")))
    out = tmp_path / "k8s" / "istio"
    render = ["istio", "render", "-c", str(routes), "-o", str(out)]
    assert main(render) == 0  # nothing stored yet: the file's weights
    file_weights = destinations(out)
    assert [w for _, w in file_weights] == [10, 90]
    store_weight(tmp_path / "rollout.db", 25)
    assert main([*render, "--check"]) == 1  # the rollout moved: k8s/istio is stale
    assert main(render) == 0
    assert destinations(out) == [
        ("v2.orders.svc.cluster.local", 25),
        ("legacy.legacy.svc.cluster.local", 75),
    ]
    assert main([*render, "--check"]) == 0
    assert main([*render, "--no-live-weights"]) == 0
    assert destinations(out) == file_weights


def test_render_names_a_rollout_store_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROLLING.replace("sqlite:///STORE", "mysql://db/rollouts"))
    out = tmp_path / "out"
    assert main(["istio", "render", "-c", str(routes), "-o", str(out)]) == 2
    assert "rollout store mysql://db/rollouts: unsupported rollout store URL" in (
        capsys.readouterr().err
    )
    assert not out.exists()
    assert main(["istio", "render", "-c", str(routes), "-o", str(out), "--no-live-weights"]) == 0


def test_the_repositorys_k8s_directory_is_rendered_from_routes_yaml() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "istio", "render", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_writes_a_valid_routes_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "imported.yaml"
    args = [
        "istio",
        "import",
        str(SAMPLES / "reviews-80-20.yaml"),
        "--backends-from",
        str(SAMPLES / "destination-rules.yaml"),
        "-o",
        str(out),
    ]
    assert main(args) == 0
    config = load_file(out)
    assert dict(config.routes[0].split) == {"v1": 80, "v2": 20}
    assert main(["istio", "import", str(SAMPLES / "ratings-delay.yaml")]) == 2
    err = capsys.readouterr().err
    assert "ratings-delay.yaml: http[0].fault: fault injection is not supported" in err
    assert main(["istio", "import", str(tmp_path / "missing.yaml")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_kubectl_kustomize_builds_k8s() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (1.21 or newer) is needed to build k8s/: see README, Set-up")
    result = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "k8s")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    for kind in (
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "VirtualService",
        "DestinationRule",
        "ServiceEntry",
    ):
        assert kind in kinds
    deployment = next(
        d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Deployment"
    )
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["securityContext"]["runAsNonRoot"] is True
    container = spec["containers"][0]
    assert "/readyz" in " ".join(container["readinessProbe"]["exec"]["command"])
    assert "/healthz" in " ".join(container["livenessProbe"]["exec"]["command"])
    assert container["resources"]["limits"] and container["resources"]["requests"]
    config_map = spec["volumes"][0]["configMap"]["name"]
    assert config_map.startswith("strangler-routes-")  # generated, hashed: a change rolls pods
