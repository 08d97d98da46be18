"""Comparing runs: A/A, A/B, thresholds, contexts, JSON/JUnit output, the `compare` command."""

from __future__ import annotations

import argparse
import json
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers_runs

from helpers_runs import write_run  # noqa: E402
from vbench.stats import compare  # noqa: E402
from vbench.commands import report as reportcli  # noqa: E402
from vbench.core.errors import RegressionFound, UserError  # noqa: E402
from vbench.results.rundir import load_samples  # noqa: E402


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


def test_aa_two_runs_from_one_distribution_show_no_change(results):
    base = load_samples(write_run(results, "a", seed=1, reps=10))
    new = load_samples(write_run(results, "b", seed=2, reps=10))
    res = compare.compare(base, new, default_threshold=0.10)
    assert not res.has_regressions and not res.gate_failed, res.to_text()
    gated = res.table[res.table["gated"]]
    assert set(gated["status"]) == {"unchanged"}
    assert set(gated["metric"]) == {"iops", "clat_p99"}  # the default gate of a disk run
    assert len(gated) == 4 * 3 * 2 and len(res.table) == 4 * 3 * 5  # variants x workloads x metrics


def test_aa_at_five_repetitions_cannot_claim_unchanged_within_five_percent(results):
    """Old semantics called these rows "unchanged" because nothing was significant; their
    intervals reach past +-5%, so the honest verdict is inconclusive (and the gate fails)."""
    base = load_samples(write_run(results, "a", seed=1, reps=5))
    new = load_samples(write_run(results, "b", seed=2, reps=5))
    res = compare.compare(base, new)
    assert not res.has_regressions and len(res.improvements) == 0
    inc = res.gate_inconclusive
    assert len(inc) > 0 and ((inc["ci_low"] < -0.05) | (inc["ci_high"] > 0.05)).all()
    assert res.gate_failed and "inconclusive" in res.gate_message()
    relaxed = compare.compare(base, new, fail_inconclusive=False)
    assert not relaxed.gate_failed and "inconclusive allowed" in relaxed.gate_message()


@pytest.mark.parametrize("reps", [3, 5, 10])
def test_aa_many_seeds_no_false_alarm(results, reps):
    alarms = 0
    for seed in range(8):
        base = load_samples(write_run(results, f"a{reps}-{seed}", seed=seed, reps=reps))
        new = load_samples(write_run(results, f"b{reps}-{seed}", seed=100 + seed, reps=reps))
        t = compare.compare(base, new).table
        alarms += (t["gated"] & t["status"].isin(["regression", "improvement"])).any()
    assert alarms <= 1  # the gated family's error rate is held at alpha by the correction


@pytest.mark.parametrize("reps", [3, 5])
def test_two_x_regression_is_detected_in_that_variant_only(results, reps):
    base = load_samples(write_run(results, "a", seed=1, reps=reps))
    new = load_samples(write_run(results, "b", seed=2, reps=reps, scale={"virtio-blk": 0.5}))
    res = compare.compare(base, new)
    regs = res.regressions
    assert set(regs["variant"]) == {"virtio-blk"}
    # every metric regressed, whichever its direction: IOPS and bandwidth halve, latency doubles
    assert set(regs["metric"]) == {"iops", "bw", "clat_p50", "clat_p99", "clat_p99.9"}
    iops = regs[regs["metric"] == "iops"]
    assert (iops["change"] < -0.4).all() and (iops["ci_high"] < 0).all()
    lat = regs[regs["metric"] == "clat_p50"]
    assert (lat["change"] > 0.8).all()


def test_improvement_is_not_a_regression(results):
    base = load_samples(write_run(results, "a", seed=1))
    new = load_samples(write_run(results, "b", seed=2, scale={"sata": 1.5}))
    res = compare.compare(base, new)
    assert not res.has_regressions
    assert set(res.improvements["variant"]) == {"sata"}


def test_thresholds_per_metric(results):
    base = load_samples(write_run(results, "a", seed=1, reps=8))
    new = load_samples(write_run(results, "b", seed=2, reps=8, scale={"sata": 0.8}))
    strict = compare.compare(base, new)
    assert "iops" in set(strict.regressions["metric"])
    lax = compare.compare(base, new, thresholds={"iops": 0.35, "bw": 0.35})
    assert not {"iops", "bw"} & set(lax.regressions["metric"])
    assert "clat_p50" in set(lax.regressions["metric"])  # +25% latency, default threshold 5%
    row = lax.table[(lax.table["metric"] == "iops") & (lax.table["variant"] == "sata")].iloc[0]
    assert row["status"] == "unchanged" and row["threshold"] == 0.35


def test_default_threshold(results):
    base = load_samples(write_run(results, "a", seed=1, reps=8))
    new = load_samples(write_run(results, "b", seed=2, reps=8, scale={"sata": 0.8}))
    assert not compare.compare(base, new, default_threshold=0.5).has_regressions


def test_mixed_accelerators_are_refused_unless_allowed(results):
    kvm = load_samples(write_run(results, "a", accelerator="kvm"))
    tcg = load_samples(write_run(results, "b", accelerator="tcg", seed=3))
    with pytest.raises(UserError, match="different contexts.*tcg.*--allow-mixed"):
        compare.compare(kvm, tcg)
    res = compare.compare(kvm, tcg, allow_mixed=True)
    assert any("mixed contexts allowed" in n for n in res.notes)


def test_mixed_hosts_are_refused(results):
    a = load_samples(write_run(results, "a", host="lab1"))
    b = load_samples(write_run(results, "b", host="lab2", seed=3))
    with pytest.raises(UserError, match="lab1.*lab2"):
        compare.compare(a, b)


def test_both_sides_with_two_contexts_are_compared_context_by_context(results):
    base = pd.concat([load_samples(write_run(results, "a1", accelerator="kvm", seed=1)),
                      load_samples(write_run(results, "a2", accelerator="tcg", seed=2, scale={"sata": 0.1}))])
    new = pd.concat([load_samples(write_run(results, "b1", accelerator="kvm", seed=3)),
                     load_samples(write_run(results, "b2", accelerator="tcg", seed=4, scale={"sata": 0.1}))])
    res = compare.compare(base, new)
    assert set(res.table["accelerator"]) == {"kvm", "tcg"}
    assert not res.has_regressions  # pooling kvm with tcg would have made sata look bimodal
    assert res.table["context_split"].all()


def test_noisy_and_too_few_repetitions_and_missing(results):
    base = load_samples(write_run(results, "a", seed=1, cv=0.3, reps=4,
                                  workloads={"randread-4k-qd32": ["iops"]}))
    new = load_samples(write_run(results, "b", seed=2, cv=0.3, reps=4,
                                 workloads={"randread-4k-qd32": ["iops"], "seqread-1m": ["bw"]}))
    one = load_samples(write_run(results, "c", seed=3, reps=1,
                                 workloads={"randread-4k-qd32": ["iops"]}))
    res = compare.compare(base, new)
    status = res.table.groupby("workload")["status"].agg(set).to_dict()
    assert status["seqread-1m"] == {"missing"}
    # 30% noise at 4 repetitions: the interval spans far past 5%, nothing is significant
    assert status["randread-4k-qd32"] == {"inconclusive"}
    few = compare.compare(base, one).table
    assert set(few["status"]) == {"inconclusive"}
    assert few["reason"].str.contains("fewer than 3 per side").all()


def test_json_and_junit(results):
    base = load_samples(write_run(results, "a", seed=1))
    new = load_samples(write_run(results, "b", seed=2, scale={"ide": 0.5},
                                 workloads={"randread-4k-qd32": ["iops", "bw"],
                                            "new-only": ["iops"]}))
    res = compare.compare(base, new)
    doc = json.loads(res.to_json())
    assert doc["counts"]["regression"] == len(res.regressions) > 0
    assert doc["gate"]["failed"] and doc["gate"]["metrics"][:2] == ["iops", "clat_p99"]
    assert doc["base_runs"] == ["a"] and doc["new_runs"] == ["b"]
    assert any(r["ci_low"] is None for r in doc["rows"])  # NaN becomes null, not invalid JSON
    root = ET.fromstring(res.to_junit())
    assert root.tag == "testsuite"
    cases = root.findall("testcase")
    assert len(cases) == len(res.table)
    failures = [c for c in cases if c.find("failure") is not None]
    gate_fail = len(res.gate_regressions) + len(res.gate_inconclusive)
    assert len(failures) == gate_fail == int(root.get("failures"))
    regs = [c for c in failures if c.find("failure").get("type") == "regression"]
    assert {c.get("classname").split(".")[-1] for c in regs} == {"ide"}
    assert {c.get("name") for c in regs} == {"iops"}  # only gated rows fail; bw is reported
    assert any(c.find("skipped") is not None for c in cases)  # missing rows are skipped


def test_junit_escapes_hostile_names():
    rows = []
    for run, value in (("a", 100.0), ("b", 50.0)):
        for rep in range(4):
            rows.append({"run_id": run, "scenario": "s<&>\"'", "variant": "<script>alert(1)</script>",
                         "device": "disk", "model": "virtio", "paravirtual": True,
                         "workload": "w\x01]]>", "repetition": rep, "metric": "iops",
                         "value": value * (1 + rep / 1000), "unit": "", "accelerator": "kvm",
                         "host": "h"})
    df = pd.DataFrame(rows)
    res = compare.compare(df[df["run_id"] == "a"], df[df["run_id"] == "b"])
    text = res.to_junit()
    root = ET.fromstring(text)  # well-formed
    assert "<script>" not in text
    assert root.find("testcase").get("classname").endswith("<script>alert(1)</script>")


def test_bad_arguments():
    df = pd.DataFrame({"metric": ["iops"], "value": [1.0]})
    with pytest.raises(UserError, match="threshold"):
        compare.compare(df, df, thresholds={"iops": 50})
    with pytest.raises(UserError, match="alpha"):
        compare.compare(df, df, alpha=2)
    with pytest.raises(UserError, match="correction"):
        compare.compare(df, df, correction="magic")
    with pytest.raises(UserError, match="no samples"):
        compare.compare(df.iloc[:0], df)


# ---- the command ------------------------------------------------------------------------------------

def parse(argv):
    parser = argparse.ArgumentParser(prog="vbench")
    reportcli.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_parse_thresholds():
    assert reportcli.parse_thresholds(["iops=0.05", "clat_p99.9=10%"]) == {
        "iops": 0.05, "clat_p99.9": pytest.approx(0.1)}
    for bad in ("iops", "iops=", "=0.1", "iops=abc", "iops=50"):
        with pytest.raises(UserError):
            reportcli.parse_thresholds([bad])


def test_compare_command_regression_exit_status_and_files(results, tmp_path, capsys):
    a = write_run(results, "a", seed=1)
    b = write_run(results, "b", seed=2, scale={"virtio-blk": 0.5})
    args = parse(["compare", str(a), str(b), "--json", str(tmp_path / "c.json"),
                  "--junit", str(tmp_path / "c.xml"), "--threshold", "iops=0.1"])
    with pytest.raises(RegressionFound) as exc:
        args.func(args)
    assert exc.value.exit_status == 1
    assert "virtio-blk" in str(exc.value)
    out = capsys.readouterr().out
    assert "regression" in out and "virtio-blk" in out and "gate failed" in out
    assert json.loads((tmp_path / "c.json").read_text())["counts"]["regression"] > 0
    ET.parse(tmp_path / "c.xml")


def test_compare_command_clean_run(results, capsys):
    a = write_run(results, "a", seed=1, reps=10)
    b = write_run(results, "b", seed=2, reps=10)
    args = parse(["compare", str(a), str(b), "--threshold", "nosuchmetric=0.1",
                  "--default-threshold", "10%"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "unchanged" in out and "no metric 'nosuchmetric'" in out and "gate passed" in out


def test_compare_command_inconclusive_fails_unless_allowed(results, capsys):
    a = write_run(results, "a", seed=1, reps=3)
    b = write_run(results, "b", seed=2, reps=3)
    args = parse(["compare", str(a), str(b)])
    with pytest.raises(RegressionFound, match="inconclusive") as exc:
        args.func(args)
    assert exc.value.exit_status == 1 and "regression" not in str(exc.value).split(":")[0]
    args = parse(["compare", str(a), str(b), "--allow-inconclusive"])
    assert args.func(args) == 0
    assert "inconclusive allowed" in capsys.readouterr().out


def test_compare_command_uses_the_scenarios_gate(results, capsys):
    text = "name: disk\ndevice: disk\ngate: {metrics: [bw], variants: [sata], threshold: 0.5}\n"
    meta = {"scenario": {"name": "disk", "file": "scenarios/disk.yaml", "text": text}}
    a = write_run(results, "a", seed=1, reps=5, meta=meta)
    b = write_run(results, "b", seed=2, reps=5, scale={"ide": 0.5}, meta=meta)
    args = parse(["compare", str(a), str(b), "--json", str(results / "c.json")])
    assert args.func(args) == 0  # ide halved, but only sata's bandwidth is gated (within 50%)
    doc = json.loads((results / "c.json").read_text())
    gated = [r for r in doc["rows"] if r["gated"]]
    assert {(r["metric"], r["variant"]) for r in gated} == {("bw", "sata")}
    assert doc["default_threshold"] == 0.5 and doc["counts"]["regression"] > 0


def test_compare_command_refuses_mixed_and_bad_paths(results):
    a = write_run(results, "a", accelerator="kvm")
    b = write_run(results, "b", accelerator="tcg")
    args = parse(["compare", str(a), str(b)])
    with pytest.raises(UserError, match="--allow-mixed"):
        args.func(args)
    args = parse(["compare", str(a), str(b), "--allow-mixed"])
    assert args.func(args) == 0  # same numbers, just labelled differently
    args = parse(["compare", str(results), str(b)])
    with pytest.raises(UserError, match="results root"):
        args.func(args)


def test_compare_command_options_are_validated():
    with pytest.raises(SystemExit):
        parse(["compare", "a", "b", "--alpha", "1.5"])
    with pytest.raises(SystemExit):
        parse(["compare", "a", "b", "--default-threshold", "x"])
    assert parse(["compare", "a", "b", "--default-threshold", "10%"]).default_threshold == pytest.approx(0.1)


def zero_base_frame(metric):
    rows = [{"run_id": r, "metric": metric, "variant": "v", "workload": "w",
             "value": v, "repetition": i} for r, vals in (("a", [0, 0, 0]), ("b", [1, 2, 3]))
            for i, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_zero_base_without_an_absolute_threshold_is_inconclusive():
    df = zero_base_frame("guest_cpu_sys")
    row = compare.compare(df[df.run_id == "a"], df[df.run_id == "b"]).table.iloc[0]
    assert math.isnan(row["change"]) and row["status"] == "inconclusive"
    assert "absolute threshold" in row["reason"]


def test_zero_base_with_an_absolute_threshold_is_judged_in_its_unit():
    df = zero_base_frame("retransmits")  # declared: 100 retransmits
    row = compare.compare(df[df.run_id == "a"], df[df.run_id == "b"]).table.iloc[0]
    assert row["scale"] == "absolute" and row["change"] == pytest.approx(2.0)
    assert row["status"] == "unchanged"
    strict = compare.compare(df[df.run_id == "a"], df[df.run_id == "b"],
                       abs_thresholds={"retransmits": 0.5}).table.iloc[0]
    assert strict["status"] in ("regression", "inconclusive")


# ---- scripts/nightly.sh with a stand-in for `vbench run` ---------------------------------------------

FAKE_VBENCH = """#!{python}
import os, sys
from pathlib import Path
sys.path[:0] = [{src!r}, {tests!r}]
args = sys.argv[1:]
if args[0] in ("lab", "image"):
    sys.exit(0)
if args[0] == "run":
    from helpers_runs import write_run
    results = Path(args[args.index("--results") + 1])
    n = len([p for p in results.iterdir() if p.is_dir()]) if results.is_dir() else 0
    scale = {{}}
    if os.environ.get("FAKE_SCALE"):
        variant, factor = os.environ["FAKE_SCALE"].split("=")
        scale[variant] = float(factor)
    path = write_run(results, f"2026120{{n + 1}}-020000-disk", seed=n, scale=scale,
                     started=f"2026-12-0{{n + 1}}T02:00:00")
    print("some progress line")
    print(f"run: {{path}}")
    sys.exit(int(os.environ.get("FAKE_RUN_STATUS", "0")))
import argparse
from vbench.commands import report as reportcli
from vbench.core.errors import UserError
parser = argparse.ArgumentParser(prog="vbench")
reportcli.add_parsers(parser.add_subparsers(dest="command", required=True))
ns = parser.parse_args(args)
try:
    sys.exit(ns.func(ns))
except UserError as exc:
    print(f"vbench: error: {{exc}}", file=sys.stderr)
    sys.exit(exc.exit_status)
"""


def run_nightly(tmp_path, **env):
    """scripts/nightly.sh with everything it reads or writes under ``tmp_path``: no inherited
    NIGHTLY_*/VBENCH* variable (a pinned run or a baseline from the caller's environment), no
    state in the default NIGHTLY_HOME (/var/lib/vbench/nightly: other runs' pins), no setup, no
    lab or image (the fake answers those), no bytecode written into the checkout."""
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    fake = tmp_path / "fake-vbench"
    if not fake.exists():
        fake.write_text(FAKE_VBENCH.format(python=sys.executable, src=str(repo / "src"),
                                           tests=str(repo / "tests")))
        fake.chmod(0o755)
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("NIGHTLY_", "VBENCH"))}
    full = {**inherited, "VBENCH": str(fake), "NIGHTLY_RESULTS": str(tmp_path / "results"),
            "NIGHTLY_REPORTS": str(tmp_path / "reports"), "NIGHTLY_OUT": str(tmp_path / "nightly"),
            "NIGHTLY_PYTHON": sys.executable, "NIGHTLY_HOME": str(tmp_path / "home"),
            "VBENCH_HOME": str(tmp_path / "vbench-home"), "NIGHTLY_SETUP": "0",
            "NIGHTLY_PREPARE": "0", "PYTHONDONTWRITEBYTECODE": "1",
            # 5 repetitions at 3% noise cannot show "within 5%"; the fake runs gate at 20%
            "NIGHTLY_COMPARE_ARGS": "--default-threshold 0.2", **env}
    return subprocess.run(["bash", str(repo / "scripts" / "nightly.sh")], env=full,
                          capture_output=True, text=True, timeout=300)


def test_nightly_script(tmp_path, monkeypatch):
    # a stale pin and baseline in the environment (another night's, long deleted) change nothing
    monkeypatch.setenv("NIGHTLY_KNOWN_GOOD", str(tmp_path / "gone"))
    monkeypatch.setenv("NIGHTLY_BASELINE", str(tmp_path / "gone"))
    first = run_nightly(tmp_path)
    assert first.returncode == 20, first.stdout + first.stderr  # no baseline: its own status
    assert "no baseline yet" in first.stdout
    assert (tmp_path / "reports" / "nightly-20261201-020000-disk" / "index.html").is_file()
    pinned = (tmp_path / "home" / "known-good" / "disk").read_text().strip()
    assert pinned == str(tmp_path / "results" / "20261201-020000-disk")  # first good run pinned

    second = run_nightly(tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    doc = json.loads((tmp_path / "nightly" / "compare-previous.json").read_text())
    assert doc["base_runs"] == ["20261201-020000-disk"] and doc["new_runs"] == ["20261202-020000-disk"]
    assert doc["counts"]["regression"] == 0 and not doc["gate"]["failed"]
    assert not (tmp_path / "nightly" / "compare-known-good.json").exists()  # the same run
    report = tmp_path / "reports" / "nightly-20261202-020000-disk" / "index.html"
    assert "20261201-020000-disk" in report.read_text()  # side by side with the baseline
    assert (report.parent / "history" / "disk" / "index.html").is_file()
    written = {p.name for p in tmp_path.iterdir()}
    assert written <= {"fake-vbench", "results", "reports", "nightly", "home", "vbench-home"}

    third = run_nightly(tmp_path, FAKE_SCALE="virtio-blk=0.5")
    assert third.returncode == 1, third.stdout + third.stderr
    assert "GATE FAILED" in third.stdout
    junit = ET.parse(tmp_path / "nightly" / "junit.xml").getroot()
    assert int(junit.get("failures")) > 0
    assert [s.get("name") for s in junit] == ["vbench.compare.previous", "vbench.compare.known-good"]
    summary = (tmp_path / "nightly" / "summary.md").read_text()
    assert "against the previous run `20261202-020000-disk`" in summary
    assert "against the known-good run `20261201-020000-disk`" in summary

    # an explicit baseline, and a run with failed repetitions: compared, reported, status kept
    base = tmp_path / "results" / "20261201-020000-disk"
    fourth = run_nightly(tmp_path, NIGHTLY_BASELINE=str(base), FAKE_RUN_STATUS="11")
    assert fourth.returncode == 11, fourth.stdout + fourth.stderr
    assert json.loads((tmp_path / "nightly" / "compare-previous.json").read_text())["base_runs"] == [base.name]


def test_zero_to_five_percent_loss_fails_the_gate():
    rows = [{"run_id": r, "scenario": "net", "variant": "virtio-net", "device": "nic",
             "model": "virtio", "paravirtual": True, "workload": "rtt-h2g", "repetition": i,
             "metric": "loss", "value": v, "unit": "%", "accelerator": "kvm", "host": "h"}
            for r, vals in (("a", [0.0, 0.0, 0.0]), ("b", [5.0, 4.5, 5.5])) for i, v in enumerate(vals)]
    df = pd.DataFrame(rows)
    res = compare.compare(df[df.run_id == "a"], df[df.run_id == "b"])
    row = res.table.iloc[0]
    assert row["gated"] and row["scale"] == "absolute" and row["status"] == "regression"
    assert row["change"] == pytest.approx(5.0) and res.gate_failed
