"""Where vbench keeps its state on the host. ``VBENCH_HOME`` overrides the root (default
/var/lib/vbench when root, else ~/.local/share/vbench)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    env = os.environ.get("VBENCH_HOME")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/vbench")
    return Path.home() / ".local/share/vbench"


def lab_dir() -> Path:
    return home() / "lab"


def images_dir() -> Path:
    return home() / "images"


def guests_dir() -> Path:
    return home() / "guests"
