"""Reading files vbench did not write (scenarios, recipes): bounded in size, depth and echo.

A scenario may come from someone else and vbench runs as root, so reading one must not cost
unbounded memory or time, nor turn into an unbounded error message: files are capped in size,
YAML aliases (the "billion laughs" expansion) are refused, nesting is capped, and values quoted
back in messages are cut (``shown``).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_SHOWN = 40


class UntrustedInputError(ValueError):
    """Input refused before it is parsed into values; the message is one line."""


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` on one line and at most ``limit`` characters."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def read_text(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A regular file's text, refused (UntrustedInputError) beyond ``max_bytes``.

    OSError and UnicodeDecodeError pass through for the caller to word.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        import stat

        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise UntrustedInputError("is not a regular file")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UntrustedInputError(f"is larger than {max_bytes // 1024} KiB; scenarios and recipes "
                                  f"are small files")
    return data.decode("utf-8")


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with a nesting cap (the composer recurses per level)."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed here; write the value out", mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        self._depth = 0
        return super().compose_document()


def load_yaml(text: str, max_bytes: int = MAX_FILE_BYTES):
    """Parse untrusted YAML text: size-capped, no aliases, bounded depth.

    Raises yaml.YAMLError (with a mark) or UntrustedInputError; both carry one-line messages.
    """
    if len(text) > max_bytes:
        raise UntrustedInputError(f"is larger than {max_bytes // 1024} KiB; scenarios and recipes "
                                  f"are small files")
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise UntrustedInputError(f"is nested too deeply (more than {MAX_DEPTH} levels)") from None
