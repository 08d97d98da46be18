"""src/vbench type-checks ([tool.mypy] in pyproject.toml): checked here too so that every landing
sees a type error before CI does (seconds: mypy is incremental)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_finds_no_type_error():
    pytest.importorskip("mypy")
    cp = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
    assert cp.returncode == 0, cp.stdout + cp.stderr
