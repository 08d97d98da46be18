"""``python -m vbench.cli`` and old imports: the command line lives in :mod:`vbench.commands`."""

from __future__ import annotations

import sys

from .commands import build_parser, main
from .commands.output import table as _table

__all__ = ["build_parser", "main", "_table"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
