"""The package says it is typed (PEP 561) and ships the marker."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_py_typed_is_in_the_package_and_its_data():
    assert (ROOT / "src" / "vbench" / "py.typed").is_file()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["vbench"]
    assert meta["tool"]["mypy"]["files"] == ["src/vbench"]
