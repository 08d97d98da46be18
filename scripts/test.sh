#!/usr/bin/env bash
# The whole test suite: install what is needed, then unit tests (seconds, no VM) and integration
# tests (real lab, real image, real guests). The integration fixtures bring the lab up and build
# the image when needed, and take down what they brought up. Run as root on Debian 12.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit $?
# Types first (seconds): src/vbench must type-check ([tool.mypy] in pyproject.toml).
if ! .venv/bin/python -m mypy; then
  echo "test.sh: mypy found type errors in src/vbench; that is a failure" >&2
  exit 1
fi
# Tests and benchmarks are not type-checked, but a name they use that src/vbench no longer has
# is always a bug, otherwise found only when that integration test boots its guest.
if ! .venv/bin/python scripts/check_names.py; then
  echo "test.sh: tests/ or bench/ use a name that does not exist (above); that is a failure" >&2
  exit 1
fi
# Arguments that name a test path run one pytest, as given. Otherwise two phases: the unit tests
# (no VM) on two workers, one file per worker (they share nothing but the CPU, and a file's tests
# stay together), then the integration tests one after another (they share the lab and the CPU
# their guests' TCG needs). pytest exits 5 when it collected nothing: one phase may select nothing
# (say -k named only unit tests), both may not.
paths=0
for a in "$@"; do
  case "$a" in -*) ;; *) [ -e "${a%%::*}" ] && paths=1 ;; esac
done
if [ "$paths" = 1 ]; then
  .venv/bin/python -m pytest "$@"
  rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
  fi
  exit "$rc"
fi
.venv/bin/python -m pytest tests/unit -n 2 --dist loadfile "$@"
unit=$?
.venv/bin/python -m pytest tests/integration "$@"
integ=$?
if [ "$unit" -eq 5 ] && [ "$integ" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
for rc in "$unit" "$integ"; do
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
    echo "test.sh: unit tests exited $unit, integration tests $integ" >&2
    exit "$rc"
  fi
done
exit 0
