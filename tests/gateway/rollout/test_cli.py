"""``strangler rollout``: the admin address, the token, and what an unreachable API says.
(The commands against a running gateway are exercised in test_driver.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import parse
from gateway.rollout.cli import admin_url
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
