"""Conventions across commands: `-` is stdout for --json/--junit, global options after the
subcommand, compare's JSON carries a schema version and units, one exit status per kind of error,
help texts that say what they mean, and shell completion generated from the parser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vbench.commands import build_parser, subcommand_parsers
from vbench.commands.completion import bash_script, zsh_script

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "tests/data/runs"
A, B = RUNS / "20261126-113024-smoke-disk", RUNS / "20261126-113314-smoke-disk"


def vb(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VBENCH_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "vbench", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_compare_json_to_stdout_with_schema_version_and_units(tmp_path):
    cp = vb(tmp_path, "compare", str(A), str(B), "--json", "-", "--allow-inconclusive")
    assert cp.returncode == 0, cp.stderr
    doc = json.loads(cp.stdout)  # stdout is only the JSON; the table went to stderr
    assert doc["schema_version"] == 2 and "change" in doc["units"] and "centre_new" in doc["units"]
    iops = next(r for r in doc["rows"] if r["metric"] == "iops")
    assert iops["unit"] == "IO/s" and iops["change_unit"] == "fraction"
    assert "compare: base" in cp.stderr and not (tmp_path / "-").exists()


def test_junit_to_stdout_and_only_one_stdout(tmp_path):
    cp = vb(tmp_path, "compare", str(A), str(B), "--junit", "-", "--allow-inconclusive")
    assert cp.returncode == 0 and cp.stdout.lstrip().startswith("<?xml"), cp.stderr
    cp = vb(tmp_path, "compare", str(A), str(B), "--junit", "-", "--json", "-")
    assert cp.returncode == 2 and "stdout" in cp.stderr


def test_fleet_compare_json_to_stdout(tmp_path):
    cp = vb(tmp_path, "fleet", "compare", "--run", f"a={A}", "--run", f"b={B}", "--json", "-")
    assert cp.returncode == 0, cp.stderr
    assert isinstance(json.loads(cp.stdout), list)


@pytest.mark.parametrize("argv", [["validate", "x.yaml", "--debug"],
                                  ["fleet", "compare", "--debug", "F"],
                                  ["--debug", "validate", "x.yaml"]])
def test_debug_works_before_and_after_the_subcommand(argv):
    assert build_parser().parse_args(argv).debug is True
    assert build_parser().parse_args([a for a in argv if a != "--debug"]).debug is False


def test_a_corrupt_run_json_exits_the_same_from_report_and_compare(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(A, bad)
    (bad / "run.json").write_text("{broken")
    report = vb(tmp_path, "report", str(bad), "--out", str(tmp_path / "r"))
    compare = vb(tmp_path, "compare", str(bad), str(B))
    assert report.returncode == compare.returncode == 10, (report.stderr, compare.stderr)


def test_a_bad_hosts_file_exits_3_like_a_bad_scenario(tmp_path):
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("hosts:\n  - {name: a, colour: red}\n")
    cp = vb(tmp_path, "fleet", "run", str(ROOT / "scenarios/smoke-disk.yaml"), "--hosts", str(hosts))
    assert cp.returncode == 3 and "colour" in cp.stderr


def test_help_texts():
    parsers = subcommand_parsers(build_parser())
    assert "95% interval" in parsers["compare"].format_help().replace("\n", " ")
    assert "95%%" not in parsers["compare"].format_help()
    history = " ".join(parsers["history"].format_help().split())
    assert "run id" not in history and "scenario's runs" in history
    assert "machine" in " ".join(parsers["fleet run"].format_help().split())


def test_completion_scripts_know_every_command_and_option():
    parser = build_parser()
    script = bash_script(parser)
    for path, sp in subcommand_parsers(parser).items():
        assert f"|{path}|" in script
        for action in sp._actions:
            for opt in action.option_strings:
                if opt.startswith("--"):
                    assert opt in script
    assert zsh_script(parser).startswith("#compdef vbench")


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completion_completes(tmp_path):
    (tmp_path / "c.bash").write_text(bash_script(build_parser()))
    probe = ('source c.bash; t(){ COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
             'COMPREPLY=(); _vbench; echo "${COMPREPLY[*]}"; }; t vbench lab ""; '
             't vbench run --accel ""; t vbench fleet compare --a')
    out = subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         timeout=30).stdout.splitlines()
    assert out == ["up status down gc", "kvm tcg", "--all"]
