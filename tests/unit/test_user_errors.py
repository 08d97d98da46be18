"""Bad environments give one clear line (and the right error class), never a traceback."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import pytest

from vbench.host import images, lab
from vbench.core.errors import ImageError, LabError

ROOT = Path(__file__).resolve().parents[2]


def test_missing_image_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    with pytest.raises(ImageError) as exc:
        images.require("default")
    assert "is not built" in str(exc.value) and "vbench image build" in str(exc.value)


def test_unknown_recipe_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    with pytest.raises(ImageError) as exc:
        images.build("no-such-recipe")
    assert "no image recipe" in str(exc.value) and "no-such-recipe" in str(exc.value)


def test_no_free_disk_refuses_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(images.shutil, "disk_usage", lambda p: usage(10 * 2**30, 10 * 2**30, 2**29))
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    with pytest.raises(ImageError) as exc:
        images.build("debian12")
    msg = str(exc.value)
    assert "not enough free disk" in msg and "0.5 GiB free" in msg and "\n" not in msg
    assert not any(tmp_path.glob("images/.build-*")), "a half-built image directory was left"


def test_libvirtd_down_says_run_lab_up(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    with pytest.raises(LabError) as exc:
        lab.current()
    assert "run `vbench lab up`" in str(exc.value)


def test_libvirtd_down_through_the_cli_is_one_line(tmp_path):
    cp = subprocess.run([sys.executable, "-m", "vbench", "guests", "verify", "virtio"],
                        capture_output=True, text=True, cwd=ROOT,
                        env={"VBENCH_HOME": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/bin",
                             "PYTHONPATH": str(ROOT / "src")})
    assert cp.returncode == 4
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert lines == ["vbench: error: the vbench lab is not up (libvirtd is not running): run "
                     "`vbench lab up`"]


def test_readme_lists_every_exit_status():
    """One enum, one list: the README's exit statuses are exactly ExitStatus's values."""
    import re

    from vbench.core.errors import ExitStatus, UserError

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Exit statuses", 1)[1].split("\n## ", 1)[0]
    listed = {int(n) for n in re.findall(r"`(\d+)`", section)}
    assert listed == {int(s) for s in ExitStatus}

    def classes(c):
        return [c] + [s for sub in c.__subclasses__() for s in classes(sub)]

    assert all(isinstance(c.exit_status, ExitStatus) for c in classes(UserError))
