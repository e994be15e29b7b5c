#!/usr/bin/env bash
# The protocol, upstream and WebSocket tests against the lowest dependency versions that
# pyproject.toml allows (constraints/minimum.txt), in a throwaway virtual environment.
# gateway/http/ builds on httptools and the websockets sans-I/O protocol: these keep the
# bounds true.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# constraints/minimum.txt must pin every runtime dependency at its ">=" bound.
"$PYTHON" - <<'PY'
import re
import sys
import tomllib

with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
bounds = {}
for dep in deps:
    match = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)", dep)
    if match is None:
        sys.exit(f"pyproject.toml: {dep!r} has no lower bound")
    bounds[match[1].lower()] = re.sub(r"(\.0)+$", "", match[2])
pins = {}
with open("constraints/minimum.txt") as f:
    for line in f:
        line = line.split("#")[0].split(";")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = re.sub(r"(\.0)+$", "", version.strip())
if pins != bounds:
    sys.exit(f"constraints/minimum.txt {pins} differs from pyproject.toml bounds {bounds}")
PY

# The test runner at the versions the dev extra pins.
runner=$("$PYTHON" - <<'PY'
import tomllib

with open("pyproject.toml", "rb") as f:
    dev = tomllib.load(f)["project"]["optional-dependencies"]["dev"]
print(" ".join(d for d in dev if d.split("==")[0] in ("pytest", "pytest-asyncio", "hypothesis")))
PY
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
# shellcheck disable=SC2086  # the runner pins are separate words
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c constraints/minimum.txt . $runner
"$tmp/venv/bin/python" -m pip freeze --disable-pip-version-check \
    | grep -iE '^(pyyaml|uvicorn|uvloop|httptools|websockets|starlette|httpx|aiokafka|asyncpg|aiosqlite|prometheus.client)=='
# Run from the work tree (its modules come first on sys.path), with the installed deps.
"$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/gateway/http/ tests/gateway/proxy/test_websocket.py
