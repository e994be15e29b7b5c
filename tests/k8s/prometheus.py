"""A real Prometheus for the monitoring tests: the Debian package's binaries (missing ones
fail the test with the set-up command), a server on a free loopback port scraping the
given targets every second, and the parts of its HTTP API the tests read."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.eventually import GiveUp, wait_until
from tests.harness import free_port

SETUP = "scripts/system-deps.sh test"


def binary(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``; the test fails (not skips) without it."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed (Debian package prometheus): run {SETUP}", pytrace=False
        )
    return found


def config(targets: dict[str, str], rule_files: list[Path]) -> str:
    """A Prometheus configuration scraping ``job -> host:port`` every second."""
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [address]}]}
                for job, address in targets.items()
            ],
        }
    )


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]

    async def api(self, path: str, **params: str) -> Any:
        """``data`` of an API answer; an error answer raises, naming the call and the error."""
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{self.url}/api/v1/{path}", params=params)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    async def names(self) -> set[str]:
        """Every metric name Prometheus holds a series of."""
        return set(await self.api("label/__name__/values"))

    async def up(self) -> dict[str, float]:
        """Scrape health per job (1 = the last scrape worked)."""
        return {r["metric"]["job"]: float(r["value"][1]) for r in await self.query("up")}


@contextmanager
def running(tmp: Path, targets: dict[str, str], rule_files: list[Path]) -> Iterator[Prometheus]:
    """``prometheus`` scraping ``targets``, stopped on the way out (also on failure)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "prometheus.yml").write_text(config(targets, rule_files))
    port = free_port()
    argv = [
        binary("prometheus"),
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with (tmp / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
    server = Prometheus(f"http://127.0.0.1:{port}", proc)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                said = (tmp / "prometheus.log").read_text()[-2000:]
                raise GiveUp(f"prometheus exited with {proc.returncode}: {said}")
            return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200

        wait_until(ready, timeout=20, interval=0.1, message="prometheus's /-/ready to say 200")
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
