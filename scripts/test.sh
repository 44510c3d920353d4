#!/usr/bin/env bash
# Set up (idempotent), then run every check CI runs: ruff, mypy and the whole pytest suite.
# All three always run, so one report shows every problem; the exit status is non-zero if any failed.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/server -x`.
# DATAKEEP_TEST_WORKERS=N runs pytest on N processes (pytest-xdist); 0 runs it in this process.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

failed=()

echo "== ruff check src tests" >&2
.venv/bin/ruff check src tests || failed+=("ruff")

echo "== mypy" >&2
.venv/bin/mypy || failed+=("mypy")

echo "== pytest" >&2
workers="${DATAKEEP_TEST_WORKERS:-2}"
xdist=()
if [ "$workers" != "0" ]; then
    xdist=(-n "$workers" --dist loadfile)
fi
rc=0
.venv/bin/python -m pytest "${xdist[@]}" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest: no tests were collected" >&2
elif [ "$rc" -ne 0 ]; then
    failed+=("pytest")
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all checks passed" >&2
