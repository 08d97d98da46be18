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
    # What an earlier, killed run left behind (its owner process is gone) is not this suite's:
    # clear it with the command a user would run, so that the checks below see only this run.
    vbench("lab", "gc", timeout=300)
    vbench("image", "build", timeout=1800)
    yield
    from vbench.host import lab
    from vbench.host import libvirtd

    conn = libvirtd.open_connection(lab.LabState.load().uri)
    try:
        # Only guests whose vbench process is gone: on a shared host another session's run may
        # be booting guests on the same libvirtd right now.
        libvirtd.destroy_tagged_domains(conn, orphans_only=True)
    finally:
        conn.close()
    if not was_up:
        vbench("lab", "down", timeout=300)


def tagged_domains() -> list[str]:
    """vbench's domains whose files are under this VBENCH_HOME: on a shared host, runs with
    another VBENCH_HOME use the same libvirtd, and their guests are not this test's."""
    from vbench.host import lab
    from vbench.core import paths
    from vbench.host import libvirtd

    conn = libvirtd.open_connection(lab.LabState.load().uri)
    try:
        mine = []
        for dom in conn.listAllDomains():
            tags = libvirtd._tags(dom)
            if tags is not None and Path(tags.get("dir", "/")).parent == paths.guests_dir():
                mine.append(dom.name())
        return sorted(mine)
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
    dirs_before = set(guest_dirs())
    yield
    assert set(tagged_domains()) - before == set(), "a vbench guest was left running"
    left = set(guest_dirs()) - dirs_before
    assert not left, f"guest files were left behind: {sorted(left)}"
