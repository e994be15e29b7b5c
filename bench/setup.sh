#!/usr/bin/env bash
# What the benchmarks need besides the venv (nginx and wrk): scripts/system-deps.sh bench.
exec bash "$(dirname "$0")/../scripts/system-deps.sh" bench "$@"
