"""Dangling names in tests/ and bench/: a vbench module attribute or name that no longer exists.

src/vbench is fully type-checked ([tool.mypy]); tests and bench are not, so a rename in src/vbench
could leave an integration test or a benchmark calling a function that is gone, found only when
that test boots its guest 40 minutes into CI (it happened: accel.accelerator). This runs mypy over
tests/ and bench/ and fails on the one class of error that is always a bug there: a module
attribute or a name that does not exist. Other type complaints in test code are not reported.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent
DANGLING = re.compile(r'error: (Module "?[\w.]+"? has no attribute|Module has no attribute'
                      r'|Name "[\w.]+" is not defined)')


def main() -> int:
    os.chdir(ROOT)  # mypy maps tests/... and bench/... to modules from the repository's root
    out, _err, rc = api.run(["--explicit-package-bases", "--no-error-summary",
                             "--follow-imports", "silent", "--python-version", "3.11",
                             "--check-untyped-defs", "--ignore-missing-imports",
                             "tests", "bench"])
    if rc == 2 or not out.strip() and rc != 0:  # mypy itself failed: that is no pass
        print(f"check_names: mypy could not check tests/ and bench/:\n{out}{_err}", file=sys.stderr)
        return 2
    bad = [line for line in out.splitlines() if DANGLING.search(line)]
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
