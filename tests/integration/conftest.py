"""Integration fixtures: the real lab, the real image, real guests.

The session brings the lab up and builds (or reuses) the guest image. What it brought up it takes
down at the end; a lab that was already up is left as it was. Every test is checked for leftovers:
no vbench domain and no guest directory may survive it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def vbench(*args: str, timeout: int = 1800, check: bool = True, env: dict | None = None,
           cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would."""
    cp = subprocess.run([sys.executable, "-m", "vbench", *args], cwd=cwd, capture_output=True,
                        text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and cp.returncode != 0:
        raise AssertionError(f"vbench {' '.join(args)} exited {cp.returncode}\n"
                             f"stdout:\n{cp.stdout[-3000:]}\nstderr:\n{cp.stderr[-3000:]}")
    return cp


def _lab_is_up() -> bool:
    from vbench.host import lab

    try:
        lab.current()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def lab_ready():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (namespaces, libvirtd, /dev/kvm)")
    was_up = _lab_is_up()
    vbench("lab", "up", timeout=300)
    vbench("image", "build", timeout=1800)
    yield
    from vbench.host import lab
    from vbench.guest import domain as virt

    conn = virt.open_connection(lab.LabState.load().uri)
    try:
        virt.destroy_tagged_domains(conn)
    finally:
        conn.close()
    if not was_up:
        vbench("lab", "down", timeout=300)


def tagged_domains() -> list[str]:
    from vbench.host import lab
    from vbench.guest import domain as virt

    conn = virt.open_connection(lab.LabState.load().uri)
    try:
        return virt.tagged_domains(conn)
    finally:
        conn.close()


def guest_dirs() -> list[Path]:
    from vbench.core import paths

    d = paths.guests_dir()
    return sorted(d.iterdir()) if d.is_dir() else []


@pytest.fixture
def no_leftovers(lab_ready):
    """Asserts after the test that it left no vbench domain and no overlay/scratch directory."""
    before = set(tagged_domains())
    yield
    assert set(tagged_domains()) - before == set(), "a vbench guest was left running"
    assert guest_dirs() == [], f"guest files were left behind: {guest_dirs()}"
