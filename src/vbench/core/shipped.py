"""Where the files vbench ships beside its code are: the guest image recipes (``guests/``) and
the scenarios (``scenarios/``). In a checkout they are at its root; an installed wheel carries
copies as package data under ``vbench/_shipped/`` (the build's ``setup.py`` puts them there), so
an installed vbench builds its image and finds ``vbench run disk`` outside a checkout."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "_shipped"  # vbench/_shipped
CHECKOUT_DIR = Path(__file__).resolve().parents[3]  # src/vbench/core -> the checkout
SCENARIO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")


def candidates(kind: str) -> list[Path]:
    """The directories that may hold ``kind`` (``guests`` or ``scenarios``), first wins:
    the current directory's, the checkout's, the installed package's."""
    return [Path.cwd() / kind, CHECKOUT_DIR / kind, PACKAGE_DIR / kind]


def find_dir(kind: str) -> Path | None:
    return next((d for d in candidates(kind) if d.is_dir()), None)


def scenario_by_name(name: str) -> Path | None:
    """``disk`` -> the shipped ``scenarios/disk.yaml`` (a bare safe name only; None if none)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    if not SCENARIO_NAME.match(stem) or stem.startswith("."):
        return None
    for d in candidates("scenarios"):
        path = d / f"{stem}.yaml"
        if path.is_file():
            return path
    return None


def scenario_names() -> list[str]:
    d = find_dir("scenarios")
    return sorted(p.stem for p in d.glob("*.yaml")) if d else []
