"""`vbench publish` and `--store` at the argument level (the database is exercised in
tests/integration/test_dbstore.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vbench import cli
from vbench.commands import publish as storecli
from vbench.core.errors import UserError

RUNS = Path(__file__).resolve().parents[1] / "data" / "runs"


def test_store_option_on_the_reading_commands():
    p = cli.build_parser()
    assert p.parse_args(["compare", "a", "b", "--store", "postgresql:///x"]).store == "postgresql:///x"
    assert p.parse_args(["history", "disk", "--store", "postgresql:///x"]).store == "postgresql:///x"
    assert p.parse_args(["report", "r1", "--store", "postgresql:///x"]).store == "postgresql:///x"
    assert p.parse_args(["compare", "a", "b"]).store is None


def test_publish_store_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("VBENCH_STORE", "postgresql:///fleet")
    assert cli.build_parser().parse_args(["publish", "r"]).store == "postgresql:///fleet"


def test_publish_without_a_store_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("VBENCH_STORE", raising=False)
    assert cli.main(["publish", str(RUNS)]) == 2
    err = capsys.readouterr().err
    assert "--store" in err and len(err.strip().splitlines()) == 1


def test_publish_refuses_what_is_not_a_run(tmp_path, capsys):
    assert cli.main(["publish", str(tmp_path), "--store", "postgresql:///x"]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_run_paths_expand_a_results_root():
    assert storecli._run_paths([str(RUNS)]) == sorted(RUNS.iterdir())
    with pytest.raises(UserError):
        storecli._run_paths([str(RUNS / "nope")])


def test_report_with_history_and_store_is_refused():
    args = cli.build_parser().parse_args(["report", "r", "--store", "postgresql:///x",
                                          "--history", "results"])
    with pytest.raises(UserError, match="vbench history SCENARIO --store"):
        storecli.report_from_store(args, lambda a: 0)


def test_help_does_not_import_the_database_driver():
    code = "import sys; from vbench import cli; cli.build_parser(); print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
