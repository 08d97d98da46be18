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
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$rc"
