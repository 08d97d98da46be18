"""Files vbench writes and reads: atomically, never through a link, bounded in size.

Every writer of vbench's own files (results, lab state, images, console logs) goes through
:func:`atomic_write`; every reader of a file someone else may have written through :func:`read_bytes`.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from vbench.core.errors import StoreError

FILE_MODE = 0o644  # results are shared with CI steps and web servers; the lab record passes 0600


def atomic_write(path: Path, data: str | bytes, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never half.

    The file gets ``mode`` (0644: results are shared with CI steps and web servers; the lab record
    passes 0600), the rename is made durable by an fsync of the directory, and an existing
    symlink at ``path`` is replaced, never followed. Errors (disk full, read-only file system,
    permission) become a one-line StoreError and leave no temporary file behind.
    """
    path = Path(path)
    mode_ = "wb" if isinstance(data, bytes) else "w"
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, mode)
        with os.fdopen(fd, mode_) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}; free space or fix permissions "
                         f"of the results directory, then retry") from exc
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: some file systems refuse it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """A stored file's bytes: never through a symlink, a regular file only, at most ``max_bytes``.

    Run directories may come from someone else: a symlink planted in one must not make vbench
    (root) read or write a file elsewhere.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{path} is a symbolic link; vbench does not follow links in run "
                             f"directories") from None
        raise StoreError(f"{path} is unreadable ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise StoreError(f"{path} is not a regular file")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise StoreError(f"{path} is larger than {max_bytes >> 20} MiB; it is not vbench's")
    return data


def read_tail(path: Path | str, size: int) -> bytes:
    """The last ``size`` bytes of a local file (a console, a QEMU log); b"" when unreadable."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - size))
            return fh.read(size)
    except OSError:
        return b""
