"""Fixtures for the configuration tests."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gateway.config import yamlsource


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type[Any]:
    """Run a test with each YAML parser: libyaml's when PyYAML has it, and pure Python."""
    if request.param == "python":
        monkeypatch.setattr(yamlsource, "_LOADER", yamlsource._PyLoader)
    elif not yaml.__with_libyaml__:
        # PyYAML's wheels ship libyaml; without it the fast parser is not what is tested.
        pytest.fail("PyYAML was built without libyaml: reinstall it from a wheel")
    return yamlsource._LOADER
