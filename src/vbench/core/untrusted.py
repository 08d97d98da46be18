"""Reading files vbench did not write (scenarios, recipes, run records): bounded in size, depth
and echo.

A scenario may come from someone else and vbench runs as root, so reading one must not cost
unbounded memory or time, nor turn into an unbounded error message: files are capped in size,
YAML aliases (the "billion laughs" expansion) are refused, nesting is capped, and values quoted
back in messages are cut (``shown``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_SHOWN = 40
MAX_LABELLED = 200  # characters kept of one labelled line's value


class UntrustedInputError(ValueError):
    """Input refused before it is parsed into values; the message is one line."""


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` on one line and at most ``limit`` characters."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def labelled_lines(text: str, keys: set[str] | frozenset[str],
                   limit: int = MAX_LABELLED) -> dict[str, str]:
    """``key=value`` lines another machine's shell printed -> {key: value}: only ``keys``, the
    first line of each, values stripped and cut to ``limit`` characters; other lines are
    ignored. A fact read by its name, never by its line's position."""
    got: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in keys and key not in got:
            got[key] = value.strip()[:limit]
    return got


def read_text(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A regular file's text, refused (UntrustedInputError) beyond ``max_bytes``.

    OSError and UnicodeDecodeError pass through for the caller to word.
    """
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):  # checked before fdopen, which refuses a directory with errno 21
        os.close(fd)
        raise UntrustedInputError("is a directory, not a file" if stat.S_ISDIR(mode)
                                  else "is not a regular file")
    with os.fdopen(fd, "rb") as fh:
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON text (a run record, from a file or the results database): at most
    ``max_depth`` levels, and no lone surrogate (a ``\\ud800`` escape: no UTF-8 file or page can
    hold it). Raises UntrustedInputError with a one-line message."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise UntrustedInputError(f"is nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise UntrustedInputError(f"is not readable JSON ({shown(str(exc), 80)})") from None
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:  # iterative: a deep document must not exhaust the interpreter's stack here
        value, depth = stack.pop()
        if depth > max_depth:
            raise UntrustedInputError(f"is nested deeper than {max_depth} levels")
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise UntrustedInputError("holds a lone UTF-16 surrogate (a \\udXXX escape)")
        elif isinstance(value, dict):
            stack.extend((k, depth + 1) for k in value)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return obj
