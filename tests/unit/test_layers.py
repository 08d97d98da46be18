"""The packages of src/vbench import downwards only, in one declared order; every import counts,
also those inside functions and under ``if TYPE_CHECKING:`` (a type-only import is still a
dependency a reader must follow)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Lowest first. A module may import its own package and any package before it.
LAYERS = ("core", "devices", "workloads", "scenario", "results", "stats", "host", "guest", "run",
          "report", "fleet", "commands")


def _module(path: Path, root: Path) -> str:
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported module or package.name, line) of every import statement in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out += [(f"{base}.{a.name}", node.lineno)
                    for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
    return out


def violations(root: Path, top: str = "vbench") -> list[str]:
    found = []
    for path in sorted((root / top).rglob("*.py")):
        module = _module(path, root)
        here = module.split(".")[1] if module.count(".") else None
        if here not in LAYERS:
            continue
        for target, line in _imports(path, module):
            parts = target.split(".")
            if parts[0] != top or len(parts) < 2 or parts[1] not in LAYERS:
                continue
            if LAYERS.index(parts[1]) > LAYERS.index(here):
                found.append(f"{path.relative_to(root)}:{line}: {here} imports {target}")
    return found


def test_src_vbench_imports_downwards_only():
    assert violations(SRC) == []


def test_every_package_has_a_layer_and_no_module_is_left_flat():
    top = {p.name for p in (SRC / "vbench").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top - {"templates"} == set(LAYERS)
    flat = sorted(p.name for p in (SRC / "vbench").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py"]


def test_the_rule_sees_type_only_and_function_level_imports(tmp_path):
    files = {
        "vbench/__init__.py": "",
        "vbench/core/__init__.py": "",
        "vbench/core/a.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                             "    from vbench.guest.domain import Guest\n"),
        "vbench/host/__init__.py": "",
        "vbench/host/b.py": "def f():\n    from ..run import runner\n",
        "vbench/guest/__init__.py": "",
        "vbench/guest/domain.py": "from vbench.host import b\nfrom vbench.core import a\n",
        "vbench/run/__init__.py": "",
        "vbench/run/runner.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == ["vbench/core/a.py:3: core imports vbench.guest.domain.Guest",
                                    "vbench/host/b.py:2: host imports vbench.run.runner"]
