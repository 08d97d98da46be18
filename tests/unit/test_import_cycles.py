"""No import cycles inside src/vbench (imports inside functions count; ``if TYPE_CHECKING:`` ones
do not), found with the same ast-based graph as scripts/code_figures.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _figures():
    spec = importlib.util.spec_from_file_location("code_figures", ROOT / "scripts" / "code_figures.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_src_vbench_has_no_import_cycle():
    figures = _figures()
    graph = figures.import_graph(ROOT / "src" / "vbench")
    assert "vbench.commands.run" in graph and "vbench.report.pages" in graph
    assert figures.cycles(graph) == []


def test_no_module_over_500_lines_and_no_function_over_60():
    """The limits issue 13 set (a module a reader can hold, a function a screen can show)."""
    figures = _figures()
    files = sorted((ROOT / "src" / "vbench").rglob("*.py"))
    big = {str(f.relative_to(ROOT)): n for f in files
           if (n := len(f.read_text().splitlines())) > 500}
    long_functions = [where for f in files for n, where in figures.functions(f) if n > 60]
    assert big == {} and long_functions == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


DEFERRED_CYCLE = {  # an import inside a function still makes a cycle
    "a.py": "from . import b\n",
    "b.py": "def f():\n    from .c import g\n",
    "c.py": "from .a import x\n",
}
NO_CYCLE = {  # TYPE_CHECKING imports never run; `from . import f` in sub/e needs f, not sub
    "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n",
    "b.py": "from .a import x\n",
    "sub/__init__.py": "from . import e\n",
    "sub/e.py": "from . import f\n",
    "sub/f.py": "",
}


@pytest.mark.parametrize("files, found", [(DEFERRED_CYCLE, [["pkg.a", "pkg.b", "pkg.c"]]),
                                          (NO_CYCLE, [])])
def test_what_counts_as_a_cycle(tmp_path, files, found):
    figures = _figures()
    graph = figures.import_graph(_package(tmp_path, {"__init__.py": "", **files}))
    assert figures.cycles(graph) == found
    if "sub/e.py" in files:
        assert graph["pkg.sub.e"] == {"pkg.sub.f"}
