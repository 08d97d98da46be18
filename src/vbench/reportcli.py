"""Old import path of the `report`, `compare` and `history` commands: see vbench.commands.report."""

from .commands.report import *  # noqa: F401,F403
