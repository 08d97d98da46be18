"""The sandbox the host-baseline fio runs in (bubblewrap).

The host baseline runs a benchmark tool as root on the host with options from a scenario, which
may come from someone else. Besides the option allow-list (``probes.fioopts``), the tool runs
confined: a read-only view of the whole file system except the one scratch file it measures, a
private /dev and /proc, no network (its own empty network namespace), its own PID, IPC and
UTS namespaces, no capabilities, ``no_new_privs`` set, a new session (no terminal injection), and
it dies with vbench. bubblewrap needs neither systemd as PID 1 nor a daemon.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vbench.core.errors import LabError


def bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise LabError("bubblewrap (bwrap) is not installed; the host baseline runs fio inside it: "
                       "run scripts/setup.sh as root (or apt-get install bubblewrap)")
    return path


def confine(argv: list[str], writable: Path) -> list[str]:
    """``argv`` wrapped so that it can write only ``writable`` (an existing regular file)."""
    w = Path(writable)
    if not w.is_absolute() or w.is_symlink() or not w.is_file():
        raise LabError(f"sandbox: {w} must be an existing regular file given by absolute path")
    return [bwrap(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--bind", str(w), str(w), "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--", *argv]
