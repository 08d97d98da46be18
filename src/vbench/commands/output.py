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
