"""Terminal output of the commands: progress lines and plain-text tables (a leaf module)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def say(msg: str) -> None:
    print(msg, flush=True)


def table(rows: Iterable[Sequence[object]], header: Sequence[str] | None = None) -> str:
    """Left-aligned columns, a dashed rule under the header; '' for no rows."""
    text = [tuple(str(c) for c in r) for r in rows]
    if header:
        text.insert(0, tuple(header))
    if not text:
        return ""
    widths = [max(len(r[i]) for r in text) for i in range(len(text[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in text]
    if header:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_stdout(*paths: str | None) -> bool:
    """Whether one of these ``--json``/``--junit`` values is ``-`` (stdout, by convention)."""
    return "-" in paths


def write_file_or_stdout(path: str, text: str) -> bool:
    """Write ``text`` to ``path``, or to stdout for ``-``; True when it went to stdout."""
    import sys

    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return True
    from pathlib import Path

    from vbench.results.rundir import atomic_write

    atomic_write(Path(path), text)
    return False


def check_one_stdout(**options: str | None) -> None:
    """At most one machine-readable output may go to stdout."""
    from vbench.core.errors import UserError

    dashed = [f"--{k}" for k, v in options.items() if v == "-"]
    if len(dashed) > 1:
        raise UserError(f"{' and '.join(dashed)} both ask for stdout (-); send one to a file")
