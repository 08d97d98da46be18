"""`pip install .` in a fresh venv, without the lab extras (no libvirt-python, no libvirt headers
needed): reports of stored runs build, a shipped scenario validates by name from outside the
checkout, and `vbench run` says in one line which extra to install. Needs a package index."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "tests/data/runs/20261126-113024-smoke-disk"


def test_fresh_venv_without_the_lab_extras(tmp_path):
    src = tmp_path / "src"
    anywhere = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__")

    def ignore(directory: str, names: list[str]) -> set[str]:
        # results/, reports/ and build/ of the checkout only: src/vbench/results is the package
        top = {"results", "reports", "build"} if Path(directory) == ROOT else set()
        return set(anywhere(directory, names)) | (top & set(names))

    shutil.copytree(ROOT, src, ignore=ignore)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    cp = subprocess.run([str(venv / "bin/pip"), "install", "-q", str(src)], capture_output=True,
                        text=True, timeout=900)
    if cp.returncode != 0 and ("No matching distribution" in cp.stderr
                               or "Could not find a version" in cp.stderr):
        pytest.skip(f"no package index: {cp.stderr.strip().splitlines()[-1]}")
    assert cp.returncode == 0, cp.stderr
    probe = subprocess.run([str(venv / "bin/python"), "-c", "import libvirt"], capture_output=True)
    assert probe.returncode != 0  # the point: no libvirt-python in this venv
    vb = str(venv / "bin/vbench")
    env = {"PATH": "/usr/bin:/bin", "VBENCH_HOME": str(tmp_path / "home")}
    cp = subprocess.run([vb, "report", str(RUN), "--out", str(tmp_path / "report")], cwd=tmp_path,
                        capture_output=True, text=True, env=env, timeout=300)
    assert cp.returncode == 0 and (tmp_path / "report/index.html").is_file(), cp.stderr
    cp = subprocess.run([vb, "validate", "disk"], cwd=tmp_path, capture_output=True, text=True,
                        env=env, timeout=120)
    assert cp.returncode == 0, cp.stderr
    cp = subprocess.run([vb, "run", "smoke-disk"], cwd=tmp_path, capture_output=True, text=True,
                        env=env, timeout=120)
    assert cp.returncode == 4 and "pip install 'vbench[lab]'" in cp.stderr, cp.stderr
