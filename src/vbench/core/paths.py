"""Where vbench keeps its state on the host. ``VBENCH_HOME`` (the operator's own environment)
overrides the root (default /var/lib/vbench when root, else ~/.local/share/vbench).

vbench runs as root and trusts what it finds under its home (the lab record, the images, the ssh
wrapper libvirt runs), so every directory handed out here is checked before use
(:func:`trusted_dir`): it and each directory above it belong to root (or to the user running
vbench) and are not writable by group or others (a sticky directory such as /tmp is fine above
it: others cannot rename what is ours in it). Files vbench writes there are created without
following links (:func:`write_file`, :func:`new_file`). A hosts file may name a home only under
:data:`FLEET_HOMES` (see :mod:`vbench.fleet.hosts`).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from vbench.core.errors import LabError

FLEET_HOMES = Path("/var/lib/vbench/homes")  # the only place a hosts file may put a host's home


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def trusted_dir(path: Path) -> Path:
    """``path`` when it (if it exists) and every existing directory above it, both as written and
    with links resolved, is owned by root (or this user) and not group/other-writable (sticky
    directories above it excepted); else a one-line LabError. The directory itself is never a
    symlink and never sticky-and-writable."""
    path = Path(os.path.abspath(path))
    for chain in (path, Path(os.path.realpath(path))):
        for i, p in enumerate([chain, *chain.parents]):
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise LabError(f"cannot check {p} ({exc.strerror}): vbench does not use a "
                               f"directory it cannot check") from None
            problem = ""
            if stat.S_ISLNK(st.st_mode):
                if i == 0 and chain is path:
                    problem = "is a symbolic link"
                elif not _trusted_owner(st.st_uid):
                    problem = f"is a link owned by uid {st.st_uid}"
            elif not stat.S_ISDIR(st.st_mode):
                problem = "is not a directory"
            elif not _trusted_owner(st.st_uid):
                problem = f"is owned by uid {st.st_uid}, not root"
            elif st.st_mode & 0o022 and (i == 0 or not st.st_mode & stat.S_ISVTX):
                problem = f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
            if problem:
                raise LabError(f"{p} {problem}: vbench keeps root's state only in directories "
                               f"that root owns and others cannot write (fix it, or set "
                               f"VBENCH_HOME to such a directory)")
    return path


def home() -> Path:
    env = os.environ.get("VBENCH_HOME")
    if env:
        if not os.path.isabs(env):
            raise LabError(f"VBENCH_HOME={env[:80]!r} is not an absolute path")
        return trusted_dir(Path(env))
    if os.geteuid() == 0:
        return trusted_dir(Path("/var/lib/vbench"))
    return trusted_dir(Path.home() / ".local/share/vbench")


def lab_dir() -> Path:
    return trusted_dir(home() / "lab")


def images_dir() -> Path:
    return trusted_dir(home() / "images")


def guests_dir() -> Path:
    return trusted_dir(home() / "guests")


def new_file(path: Path, mode: int = 0o600) -> BinaryIO:
    """A new file opened for writing: never an existing file, never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    return os.fdopen(fd, "wb")


def write_file(path: Path, data: str | bytes, mode: int = 0o600) -> Path:
    """Replace ``path`` with ``data``: written to an exclusively created temporary file in the
    same directory, then renamed over it (a symlink at ``path`` is replaced, never followed)."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    return path


def _suppress():
    import contextlib

    return contextlib.suppress(OSError)
