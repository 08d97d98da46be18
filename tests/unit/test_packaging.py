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


# ---- installing without a hypervisor (issue 23) ---------------------------------------------------

import ast  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import zipfile  # noqa: E402

import pytest  # noqa: E402

META = tomllib.loads((ROOT / "pyproject.toml").read_text())
# import name -> distribution name, where they differ
DIST_OF = {"yaml": "PyYAML", "jinja2": "Jinja2", "libvirt": "libvirt-python"}
LAB = {"libvirt", "paramiko", "cryptography"}


def _dist(req: str) -> str:
    return req.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()


def _third_party_imports() -> set[str]:
    found = set()
    std = set(sys.stdlib_module_names)
    for path in (ROOT / "src" / "vbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in std and n not in ("vbench", "__future__")}


def test_every_import_is_declared_and_the_lab_ones_only_in_the_lab_extra():
    core = {_dist(r) for r in META["project"]["dependencies"]}
    lab = {_dist(r) for r in META["project"]["optional-dependencies"]["lab"]}
    for module in _third_party_imports():
        dist = DIST_OF.get(module, module).lower()
        if module in LAB:
            assert dist in lab and dist not in core, module
        else:
            assert dist in core, f"{module} is imported but not a declared dependency"
    assert {"numpy", "cryptography"} <= core | lab


def test_license_file_and_a_build_older_setuptools_can_read():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert META["project"]["license"] == {"text": "MIT"}  # the SPDX string needs setuptools>=77
    assert META["build-system"]["requires"][0] == "setuptools>=61"


def test_setup_sh_installs_the_lab_and_test_extras():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "'.[lab,test]'" in text and '"$tmp[lab,test]"' in text


def test_analysis_commands_work_without_the_lab_extras(tmp_path):
    """report, compare, history, validate, plan, schema with libvirt, paramiko and cryptography
    unimportable (as in a venv of `pip install vbench`); run says which extra to install."""
    run = ROOT / "tests/data/runs/20261126-113024-smoke-disk"
    other = ROOT / "tests/data/runs/20261126-113314-smoke-disk"
    block = ("import sys\nclass B:\n    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] in ('libvirt', 'paramiko', 'cryptography'):\n"
             "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
             "sys.meta_path.insert(0, B())\nfrom vbench.commands import main\n"
             "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VBENCH_HOME": str(tmp_path / "home")}

    def vb(*args):
        return subprocess.run([sys.executable, "-c", block, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    for args in (["report", str(run), "--out", str(tmp_path / "r")],
                 ["compare", str(run), str(other), "--allow-inconclusive"],
                 ["history", "smoke-disk", "--results", str(run.parent), "--out",
                  str(tmp_path / "h")],
                 ["fleet", "compare", "--run", f"a={run}", "--run", f"b={other}"],
                 ["validate", "disk"], ["plan", "smoke-disk"], ["schema", "scenario"]):
        cp = vb(*args)
        assert cp.returncode == 0, (args, cp.stderr)
    cp = vb("run", "smoke-disk")
    assert cp.returncode == 4
    assert cp.stderr.count("\n") == 1 and "pip install 'vbench[lab]'" in cp.stderr, cp.stderr


def test_the_build_carries_the_recipes_and_shipped_scenarios(tmp_path):
    """setup.py's build_py (what a wheel is made of) puts them under vbench/_shipped/."""
    pytest.importorskip("setuptools")
    cp = subprocess.run([sys.executable, str(ROOT / "setup.py"), "-q", "build_py", "--build-lib",
                         str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert cp.returncode == 0, cp.stderr
    shipped = tmp_path / "vbench" / "_shipped"
    assert sorted(p.name for p in (shipped / "scenarios").iterdir()) == sorted(
        p.name for p in (ROOT / "scenarios").glob("*.yaml"))
    assert (shipped / "guests" / "debian12.yaml").read_text() == (
        ROOT / "guests" / "debian12.yaml").read_text()
    assert (tmp_path / "vbench" / "templates" / "report.html.j2").is_file()
