"""``strangler istio render`` and ``strangler istio import``: files in and out.

``render`` writes one file per object under ``-o`` (default ``k8s/istio``), a
kustomization listing them, and ``k8s/routes.yaml``: the configuration the
gateway's pods read (listening on all interfaces, backends at their Kubernetes
addresses).  ``--check`` writes nothing and exits 1 with a diff when any of those
files is missing, different or left over.  The weights are the rollouts' current ones,
read through the live-weights reader the command line wires in (the rollout store);
``--no-live-weights`` renders the file's own.

:func:`write_virtual_services` writes only the VirtualServices, under the same names,
for ``strangler rollout ... --mesh-out DIR``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gateway.config import Config, ConfigError, parse
from gateway.config.yamlsource import load
from gateway.istio.importer import ImportError_, import_virtual_service
from gateway.istio.render import RenderError, render

EXIT_OK, EXIT_DIFF, EXIT_INVALID = 0, 1, 2
KUSTOMIZE = "kustomize.config.k8s.io/v1beta1"
HEADER = "# Rendered by `strangler istio render` from {source}; do not edit.\n"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # repeated match blocks are written out, not as &anchors


def dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def cluster_config(config: Config) -> dict[str, Any]:
    """routes.yaml as the gateway runs inside Kubernetes."""
    doc: dict[str, Any] = load(Path(config.source).read_text(encoding="utf-8"), config.source).data
    doc["listen"] = "0.0.0.0:8080"
    admin = dict(doc.get("admin") or {})
    admin["listen"] = "0.0.0.0:9901"
    doc["admin"] = admin
    for name, backend in doc["backends"].items():
        b = config.backends[name]
        if b.k8s_host is not None:
            backend["url"] = f"http://{b.k8s_host}:{b.k8s_port}{b.base_path}"
    return doc


def files(config: Config, out: Path) -> tuple[dict[Path, str], list[str]]:
    """Every file ``render`` writes, with its text; and the warnings."""
    rendered = render(config)
    header = HEADER.format(source=Path(config.source).name)
    texts: dict[Path, str] = {}
    names = []
    for name, obj in rendered.named():
        texts[out / name] = header + dump(obj)
        names.append(name)
    texts[out / "kustomization.yaml"] = header + dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": names,
        }
    )
    texts[out.parent / "routes.yaml"] = header + dump(cluster_config(config))
    return texts, rendered.warnings


def write_virtual_services(config: Config, out: Path) -> list[Path]:
    """Write each VirtualService of ``config`` into ``out`` under the name ``render``
    gives it (each file replaced whole); the files written.  ValueError when ``config``
    cannot be rendered."""
    try:
        rendered = render(config)
    except RenderError as exc:
        raise ValueError("; ".join(exc.problems)) from None
    header = HEADER.format(source=Path(config.source).name)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, obj in rendered.named():
        if obj["kind"] == "VirtualService":
            path = out / name
            partial = out / f".{name}.tmp"
            partial.write_text(header + dump(obj), encoding="utf-8")
            os.replace(partial, path)
            written.append(path)
    return written


def render_cmd(args: argparse.Namespace, config: Config | None) -> int:
    assert config is not None
    out = Path(args.output)
    try:
        if not args.no_live_weights:
            config = args.live_weights(config)
        texts, warnings = files(config, out)
    except ValueError as exc:
        print(f"strangler istio render: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except RenderError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    for warning in warnings:
        print(f"warning: not in the mesh: {warning}", file=sys.stderr)
    if args.check:
        return check(texts, out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in _stale(texts, out):
        stale.unlink()
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(texts)} files under {out.parent}")
    return EXIT_OK


def _stale(texts: dict[Path, str], out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    return sorted(p for p in out.glob("*.yaml") if p not in texts)


def check(texts: dict[Path, str], out: Path) -> int:
    diffs: list[str] = []
    for path, text in texts.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            diffs += difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"{path} (on disk)",
                f"{path} (rendered)",
            )
    for path in _stale(texts, out):
        diffs.append(f"{path}: not rendered from the configuration any more (stale)\n")
    if diffs:
        sys.stdout.writelines(diffs)
        print(f"{out.parent} is stale: run strangler istio render", file=sys.stderr)
        return EXIT_DIFF
    print(f"{out.parent} is up to date")
    return EXIT_OK


def _load_all(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]


def import_cmd(args: argparse.Namespace, config: Config | None) -> int:
    try:
        docs = _load_all(args.virtualservice)
        rules = _load_all(args.backends_from) if args.backends_from else None
    except (OSError, yaml.YAMLError) as exc:
        print(f"strangler istio import: {exc}", file=sys.stderr)
        return EXIT_INVALID
    services = [d for d in docs if d.get("kind") == "VirtualService"]
    if len(services) != 1:
        print(
            f"{args.virtualservice}: expected one VirtualService, found {len(services)}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    rules = (
        [d for d in rules or [] if d.get("kind") == "DestinationRule"]
        if rules is not None
        else None
    )
    try:
        doc = import_virtual_service(services[0], rules)
    except ImportError_ as exc:
        for problem in exc.problems:
            print(f"{args.virtualservice}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    text = f"# Imported from {Path(args.virtualservice).name} by `strangler istio import`.\n"
    text += dump(doc)
    try:
        parse(text, args.output or "<imported>")
    except ConfigError as exc:  # a bug here, not in the input: say so plainly
        print(f"imported configuration is invalid:\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    live_weights: Callable[[Config], Config],
) -> None:
    group = sub.add_parser(
        "istio", help="render routes.yaml to Istio manifests, or import a VirtualService"
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("render", parents=[common], help="write k8s/istio from routes.yaml")
    p.add_argument("-o", "--output", default="k8s/istio", metavar="DIR")
    p.add_argument("--check", action="store_true", help="exit 1 with a diff if DIR is stale")
    p.add_argument(
        "--no-live-weights",
        action="store_true",
        help="render the weights written in routes.yaml, not the rollouts' current ones",
    )
    p.set_defaults(handler=render_cmd, needs_config=True, live_weights=live_weights)
    p = actions.add_parser("import", help="write a routes.yaml from a VirtualService")
    p.add_argument("virtualservice", metavar="VIRTUALSERVICE.yaml")
    p.add_argument("--backends-from", metavar="DESTINATIONRULES.yaml")
    p.add_argument("-o", "--output", metavar="FILE", help="default: stdout")
    p.set_defaults(handler=import_cmd, needs_config=False, no_config=True)
