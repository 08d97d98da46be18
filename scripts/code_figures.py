#!/usr/bin/env python3
"""Structure figures of a source tree: import cycles, longest functions, files over 500 lines.

    python scripts/code_figures.py [--strict] [SRC_DIR]   # default: src/vbench

An import cycle is a strongly connected set of modules of the package that import each other,
counting imports inside functions too (a deferred import hides a cycle, it does not remove it),
but not those under ``if TYPE_CHECKING:`` (they never run).
Exit status 1 when there is a cycle, so a test or CI step can assert there is none; with
``--strict`` also when a file has more than 500 lines or a function more than 60.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path, modules: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports (resolved relative imports included)."""
    me = module_name(root, path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for node in ast.walk(tree) if _is_type_checking(node)
                   for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # `if TYPE_CHECKING:` imports never run
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from pkg import mod` needs mod (and pkg, which every submodule of pkg needs
            # anyway); `from pkg import name` needs pkg.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n != me:
                out.add(n)
    return out


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def functions(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append((node.end_lineno - node.lineno + 1, f"{path}:{node.lineno} {node.name}"))
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, for every ``*.py`` under ``root``."""
    files = sorted(root.rglob("*.py"))
    modules = {module_name(root, f) for f in files}
    return {module_name(root, f): imports_of(root, f, modules) for f in files}


def main(argv: list[str]) -> int:
    strict = "--strict" in argv
    argv = [a for a in argv if a != "--strict"]
    root = Path(argv[0] if argv else "src/vbench")
    files = sorted(root.rglob("*.py"))
    found = cycles(import_graph(root))
    funcs = sorted((x for f in files for x in functions(f)), reverse=True)
    big = [(len(f.read_text().splitlines()), f) for f in files]
    big = sorted((n, f) for n, f in big if n > 500)
    print(f"longest function: {funcs[0][0]} lines ({funcs[0][1]})")
    print("next longest: " + "; ".join(f"{n} {w.split()[-1]}" for n, w in funcs[1:6]))
    print(f"functions over 60 lines: {sum(1 for n, _ in funcs if n > 60)}")
    print(f"files over 500 lines: {len(big)}" + "".join(f"\n  {n} {f}" for n, f in big))
    print(f"import cycles: {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    too_long = sum(1 for n, _ in funcs if n > 60)
    return 1 if found or (strict and (big or too_long)) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
