"""No import cycles inside src/vbench (imports inside functions count; ``if TYPE_CHECKING:`` ones
do not), found with the same ast-based graph as scripts/code_figures.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_deferred_import_still_makes_a_cycle(tmp_path):
    figures = _figures()
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from .c import g\n",
        "c.py": "from .a import x\n",
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
        "sub/__init__.py": "from . import e\n",
        "sub/e.py": "from . import f\n",
        "sub/f.py": "",
    })
    assert figures.cycles(figures.import_graph(root)) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_type_checking_imports_and_parent_packages_do_not_count(tmp_path):
    figures = _figures()
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n",
        "b.py": "from .a import x\n",
        "sub/__init__.py": "from . import e\n",
        "sub/e.py": "from . import f\n",
        "sub/f.py": "",
    })
    graph = figures.import_graph(root)
    assert graph["pkg.sub.e"] == {"pkg.sub.f"}
    assert figures.cycles(graph) == []
