#!/usr/bin/env bash
# Installs what the benchmarks need besides the project's venv: wrk and nginx (Debian packages).
set -euo pipefail
need=()
for b in wrk nginx; do command -v "$b" >/dev/null || need+=("$b"); done
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
