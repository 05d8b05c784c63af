#!/usr/bin/env bash
# Quick start 2: set up everything the tests need (idempotent), lint, type-check, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev train dist
export HF_HUB_OFFLINE=1  # tests must never reach a hub
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy
set +e
# Test files run in parallel, one file per process at a time (--dist loadfile: a file's
# module fixtures, such as its server, start once): 2 processes on a 2-core machine took the
# suite from 15:17 to 10:56; at most 4, whatever the cores (each loads models, servers).
# MALSORI_TEST_WORKERS=0 runs it in this one process.
workers="${MALSORI_TEST_WORKERS:-$(nproc 2>/dev/null || echo 2)}"
[ "$workers" -gt 4 ] && workers=4
if [ "$workers" -ge 2 ]; then
  set -- -n "$workers" --dist loadfile "$@"
fi
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "test.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
