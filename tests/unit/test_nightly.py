"""The nightly job: baselines, exit statuses, the Markdown summary and the merged JUnit file.

scripts/nightly.sh is run for real (bash) with a fake ``vbench`` (a small Python script that makes
run directories and answers ``compare`` with the exit status the test asks for), so the shell logic
-- which baselines are compared, which status is returned, what is pinned -- is tested without a VM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vbench.report import nightly

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "tests" / "data" / "runs"
AA_BASE, AA_NEW = RUNS / "20261126-113024-smoke-disk", RUNS / "20261126-113314-smoke-disk"

FAKE_VBENCH = r'''
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
log = Path(os.environ["FAKE_LOG"])
with log.open("a") as fh:
    fh.write(" ".join(args) + "\n")
cmd = args[0]
if cmd == "run":
    results = Path(args[args.index("--results") + 1])
    n = len([p for p in results.iterdir() if p.is_dir()]) if results.is_dir() else 0
    d = results / f"2026010{n}-000000-fake"
    d.mkdir(parents=True)
    meta = {"schema_version": 2, "run_id": d.name,
            "status": os.environ.get("FAKE_RUN_STATUS", "complete"),
            "started": f"2026-01-0{n + 1}T00:00:00+0000", "repetitions": 3,
            "scenario": {"name": "fake", "text": ""}, "environment": {}, "failures": []}
    (d / "run.json").write_text(json.dumps(meta))
    print(f"run: {d}")
    sys.exit(int(os.environ.get("FAKE_RUN_EXIT", "0")))
if cmd == "compare":
    out = Path(args[args.index("--json") + 1])
    out.write_text(json.dumps({"base_runs": [Path(args[1]).name], "rows": [
        {"status": "regression" if os.environ.get("FAKE_COMPARE_EXIT") == "1" else "unchanged",
         "workload": "w", "variant": "v", "metric": "iops", "median_base": 100,
         "median_new": 80, "change": -0.2, "ci_low": -0.25, "ci_high": -0.15}]}))
    junit = Path(args[args.index("--junit") + 1])
    junit.write_text('<testsuite name="vbench.compare" tests="1" failures="0" errors="0" '
                     'skipped="0"><testcase classname="fake.w.v" name="iops"/></testsuite>')
    sys.exit(int(os.environ.get("FAKE_COMPARE_EXIT", "0")))
if cmd == "report":
    out = Path(args[args.index("--out") + 1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text("<html></html>")
'''


@pytest.fixture
def night(tmp_path):
    fake = tmp_path / "fake_vbench.py"
    fake.write_text(FAKE_VBENCH)
    home = tmp_path / "home"
    log = tmp_path / "calls.log"
    env = {**os.environ, "NIGHTLY_HOME": str(home), "NIGHTLY_SETUP": "0", "NIGHTLY_PREPARE": "0",
           "VBENCH": f"{sys.executable} {fake}", "NIGHTLY_PYTHON": sys.executable,
           "FAKE_LOG": str(log), "VBENCH_HOME": str(tmp_path / "vbench-home"),
           "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                       os.environ.get("PYTHONPATH")]))}
    for k in list(env):
        if k.startswith("NIGHTLY_") and k not in ("NIGHTLY_HOME", "NIGHTLY_SETUP",
                                                  "NIGHTLY_PREPARE", "NIGHTLY_PYTHON"):
            env.pop(k)

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        log.write_text("")
        return subprocess.run(["bash", str(ROOT / "scripts" / "nightly.sh"), *args],
                              env={**env, **extra}, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    run.home, run.log = home, log  # type: ignore[attr-defined]
    return run


def _compares(log: Path) -> list[str]:
    return [line.split()[1] for line in log.read_text().splitlines() if line.startswith("compare ")]


def test_first_night_without_baseline_has_its_own_exit_status_and_pins_the_run(night):
    r = night("scenarios/smoke-disk.yaml")
    assert r.returncode == 20, r.stdout + r.stderr
    assert "no baseline yet" in r.stdout
    pinned = (night.home / "known-good" / "fake").read_text().strip()
    assert Path(pinned).parent == night.home / "results"
    assert _compares(night.log) == []
    assert "No baseline run exists yet" in (night.home / "out" / "summary.md").read_text()


def test_no_baseline_may_be_allowed(night):
    r = night("scenarios/smoke-disk.yaml", NIGHTLY_ALLOW_NO_BASELINE="1")
    assert r.returncode == 0, r.stdout + r.stderr


def test_second_and_third_nights_compare_with_previous_and_known_good(night):
    night("scenarios/smoke-disk.yaml")
    first = (night.home / "known-good" / "fake").read_text().strip()
    r = night("scenarios/smoke-disk.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _compares(night.log) == [first]  # previous == known-good: compared once
    r = night("scenarios/smoke-disk.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    runs = sorted(p for p in (night.home / "results").iterdir())
    assert _compares(night.log) == [str(runs[1]), first]
    out = night.home / "out"
    summary = (out / "summary.md").read_text()
    assert "gate passed" in summary and "against the known-good run" in summary
    suites = ET.parse(out / "junit.xml").getroot()
    assert [s.get("name") for s in suites] == ["vbench.compare.previous", "vbench.compare.known-good"]
    assert (out / "report" / "index.html").is_file()
    # the night's own run travels with the outputs (the fleet job of the matrix reads it)
    assert (out / "run" / "run.json").read_bytes() == (runs[2] / "run.json").read_bytes()


def test_a_failed_gate_exits_1_and_does_not_pin(night):
    r = night("scenarios/smoke-disk.yaml", FAKE_COMPARE_EXIT="0", NIGHTLY_AUTO_PIN="0")
    r = night("scenarios/smoke-disk.yaml", FAKE_COMPARE_EXIT="1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert not (night.home / "known-good" / "fake").exists()
    assert "**regression**" in (night.home / "out" / "summary.md").read_text()


def test_compare_error_is_2_and_run_failures_pass_through(night):
    night("scenarios/smoke-disk.yaml")
    r = night("scenarios/smoke-disk.yaml", FAKE_COMPARE_EXIT="4")
    assert r.returncode == 2, r.stdout + r.stderr
    r = night("scenarios/smoke-disk.yaml", FAKE_RUN_EXIT="11")
    assert r.returncode == 11, r.stdout + r.stderr


def test_pin_a_known_good_run_explicitly(night):
    night("scenarios/smoke-disk.yaml", NIGHTLY_AUTO_PIN="0")
    night("scenarios/smoke-disk.yaml", NIGHTLY_AUTO_PIN="0")
    runs = sorted(p for p in (night.home / "results").iterdir())
    r = night("--pin", str(runs[0]))
    assert r.returncode == 0, r.stdout + r.stderr
    r = night("scenarios/smoke-disk.yaml")
    assert _compares(night.log) == [str(runs[1]), str(runs[0])]
    r = night("--pin", str(night.home / "nowhere"))
    assert r.returncode == 2


# ---- the Python helpers on the stored A/A pair --------------------------------------------------

def test_previous_run_is_the_newest_complete_earlier_run_of_the_same_scenario(tmp_path):
    root = tmp_path / "results"
    for name in (AA_BASE.name, AA_NEW.name):
        shutil.copytree(RUNS / name, root / name)
    later = root / "20261127-000000-smoke-disk"
    shutil.copytree(AA_NEW, later)
    meta = json.loads((later / "run.json").read_text())
    meta["started"] = "2026-11-27T00:00:00+0000"
    (later / "run.json").write_text(json.dumps(meta))
    assert nightly.previous_run(root, later) == root / AA_NEW.name
    assert nightly.previous_run(root, root / AA_NEW.name) == root / AA_BASE.name
    assert nightly.previous_run(root, root / AA_BASE.name) is None
    meta["status"] = "incomplete"
    (root / AA_NEW.name / "run.json").write_text(json.dumps({**json.loads(
        (root / AA_NEW.name / "run.json").read_text()), "status": "incomplete"}))
    assert nightly.previous_run(root, later) == root / AA_BASE.name


def test_summary_puts_failing_rows_first_and_shows_headline_ratios():
    cmp = {"base_runs": [AA_BASE.name], "rows": [
        {"status": "unchanged", "workload": "a", "variant": "v", "metric": "iops", "change": 0.01},
        {"status": "inconclusive", "workload": "b", "variant": "v", "metric": "iops", "change": -0.04},
        {"status": "regression", "workload": "c", "variant": "v", "metric": "clat_p99",
         "median_base": 100.0, "median_new": 130.0, "change": 0.3, "ci_low": 0.2, "ci_high": 0.4}]}
    ratios = nightly.headline_ratios(AA_NEW)
    assert {(w, m) for w, m, *_ in ratios} == {("randread-4k-qd32", "iops"), ("seqwrite-1m", "bw")}
    assert all(r[3] > 1 for r in ratios)  # virtio-blk beats SATA in the stored runs
    md = nightly.summary_markdown(AA_NEW, [("previous", cmp)], "GATE FAILED", ratios)
    table = [line for line in md.splitlines() if line.startswith("| **") or line.startswith("| unch")]
    assert [line.split("|")[1].strip() for line in table] == ["**regression**", "**inconclusive**",
                                                              "unchanged"]
    assert "+30.0% | +20.0% \u2013 +40.0%" in md
    assert "virtio-blk vs sata" in md and "### vbench nightly: GATE FAILED" in md


def test_summary_shows_only_gated_rows_when_the_compare_marks_them():
    cmp = {"rows": [{"status": "unchanged", "workload": "a", "variant": "v", "metric": "iops",
                     "gated": True},
                    {"status": "inconclusive", "workload": "a", "variant": "v", "metric": "bw",
                     "gated": False}]}
    md = "\n".join(nightly.verdict_markdown("previous", cmp))
    assert "| unchanged | a | v | iops |" in md and "| bw |" not in md
    assert "1 gated rows shown" in md


def test_merged_junit_counts_every_suite(tmp_path):
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    a.write_text('<testsuite name="vbench.compare" tests="2" failures="1" errors="0" skipped="0">'
                 '<testcase classname="s.w.v" name="iops"><failure message="x"/></testcase>'
                 '<testcase classname="s.w.v" name="bw"/></testsuite>')
    b.write_text('<testsuite name="vbench.compare" tests="1" failures="0" errors="0" skipped="1">'
                 '<testcase classname="s.w.v" name="iops"><skipped/></testcase></testsuite>')
    root = ET.fromstring(nightly.merge_junit([("previous", a), ("known-good", b),
                                              ("missing", tmp_path / "none.xml")]))
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "1")
    assert {c.get("classname") for c in root.iter("testcase")} == {"previous.s.w.v",
                                                                   "known-good.s.w.v"}
