"""The command tree of an argparse parser (a leaf module: completion and --debug use it)."""

from __future__ import annotations

import argparse


def subcommand_parsers(parser: argparse.ArgumentParser,
                       prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand's parser by its path: ``{"lab": ..., "lab up": ...}``."""
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                path = f"{prefix} {name}".strip()
                out[path] = sp
                out.update(subcommand_parsers(sp, path))
    return out
