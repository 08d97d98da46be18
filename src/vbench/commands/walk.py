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


def _usage_args(sp: argparse.ArgumentParser) -> str:
    parts = []
    for action in sp._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        name = action.metavar or action.dest.upper()
        if action.choices:
            name = "|".join(str(c) for c in action.choices)
        parts.append(f"[{name}...]" if action.nargs == "*" else f"{name}..." if action.nargs == "+"
                     else f"[{name}]" if action.nargs == "?" else str(name))
    return " ".join(parts)


def reference_rows(parser: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    """(``vbench lab up``-style usage, its options, its help) of every command that runs
    something (not the groups), in parser order; --help and --debug are left out (every command
    has them)."""
    rows = []
    helps: dict[str, str] = {}
    for path, sp in subcommand_parsers(parser).items():
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    helps[f"{path} {choice.dest}"] = choice.help or ""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                helps[choice.dest] = choice.help or ""
    for path, sp in subcommand_parsers(parser).items():
        if any(isinstance(a, argparse._SubParsersAction) for a in sp._actions):
            continue
        opts = [a.option_strings[-1] for a in sp._actions
                if a.option_strings and a.dest not in ("help", "debug")]
        usage = f"vbench {path} {_usage_args(sp)}".strip()
        rows.append((usage, ", ".join(f"`{o}`" for o in opts), helps.get(path, "")))
    return rows


def reference_markdown(parser: argparse.ArgumentParser) -> str:
    """The README's command reference table (tests/unit/test_readme.py keeps them equal)."""
    lines = ["| command | options | what it does |", "|---|---|---|"]
    for usage, opts, help_ in reference_rows(parser):
        cell = usage.replace("|", "\\|")  # a pipe inside a table cell, even in code
        lines.append(f"| `{cell}` | {opts} | {help_.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
