"""The gate fails closed (issue 20, "Fail closed"): every check it cannot make is refused, or
fails the gate, with one line saying why; each case here passed silently before."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers_runs import write_run  # noqa: E402
from vbench.stats import compare  # noqa: E402
from vbench.commands import report as reportcli  # noqa: E402
from vbench.core.errors import RegressionFound, ScenarioError, UserError  # noqa: E402
from vbench.scenario.schema import load_scenario_text  # noqa: E402
from vbench.results.rundir import load_samples  # noqa: E402


def parse(argv):
    parser = argparse.ArgumentParser(prog="vbench")
    reportcli.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


def pair(results, **new_kw):
    a = write_run(results, "a", seed=1, reps=10, cv=0.01)
    b = write_run(results, "b", seed=2, reps=10, cv=0.01, **new_kw)
    return a, b


def test_gated_rows_missing_from_the_new_run_fail_the_gate(results):
    a, b = pair(results, workloads={"randread-4k-qd32": ["iops", "clat_p99"]})
    res = compare.compare(load_samples(a), load_samples(b))
    assert res.gate_failed and "missing on one side" in res.gate_message()
    with pytest.raises(RegressionFound, match="missing"):
        args = parse(["compare", str(a), str(b)])
        args.func(args)


def test_disjoint_workloads_fail_the_gate(results):
    a = write_run(results, "a", seed=1, reps=10, workloads={"one": ["iops"]})
    b = write_run(results, "b", seed=2, reps=10, workloads={"two": ["iops"]})
    res = compare.compare(load_samples(a), load_samples(b))
    assert res.gate_failed and not len(res.gate_regressions)


def test_an_incomplete_run_fails_the_gate_unless_allowed(results):
    a, b = pair(results, status="interrupted")
    with pytest.raises(RegressionFound, match="not complete"):
        args = parse(["compare", str(a), str(b)])
        args.func(args)
    args = parse(["compare", str(a), str(b), "--allow-incomplete", "--between-run", "none"])
    assert args.func(args) == 0


def test_an_unknown_gate_metric_is_refused(results):
    a, b = pair(results)
    args = parse(["compare", str(a), str(b), "--gate", "iop"])
    with pytest.raises(UserError, match="no such metric iop"):
        args.func(args)


def test_an_unknown_metric_in_the_scenarios_gate_is_refused():
    text = ("name: s\ndevice: disk\nvariants: [{name: v, disk: {bus: virtio}}]\n"
            "workloads: [{name: w, fio: {rw: randread}}]\ngate: {metrics: [iop]}\n")
    with pytest.raises(ScenarioError, match="no such metric iop"):
        load_scenario_text(text)


def test_a_gate_matching_no_row_fails(results):
    a, b = pair(results)
    res = compare.compare(load_samples(a), load_samples(b), gate=compare.Gate(("throughput",)))
    assert res.gate_failed and "no gated rows" in res.gate_message()


@pytest.mark.parametrize("item", ["iops=5", "iops=1", "iops=0", "iops=150%", "iops=0%"])
def test_thresholds_outside_zero_to_one_hundred_percent_are_refused(item):
    with pytest.raises(UserError, match="FRACTION in"):
        reportcli.parse_thresholds([item])


@pytest.mark.parametrize("value", ["5", "100%", "0"])
def test_a_default_threshold_outside_the_range_is_refused(value):
    with pytest.raises(SystemExit):
        parse(["compare", "a", "b", "--default-threshold", value])


def test_a_threshold_for_a_metric_the_runs_lack_is_refused(results):
    a, b = pair(results)
    args = parse(["compare", str(a), str(b), "--threshold", "nosuch=0.1"])
    with pytest.raises(UserError, match="no metric 'nosuch'"):
        args.func(args)


def test_the_same_run_twice_is_refused(results):
    a = write_run(results, "a", seed=1)
    args = parse(["compare", str(a), str(a)])
    with pytest.raises(UserError, match="both base and new"):
        args.func(args)


def test_runs_of_different_scenarios_are_refused_unless_mixed(results):
    a = write_run(results, "a", seed=1, reps=10, cv=0.01)
    b = write_run(results, "b", seed=2, reps=10, cv=0.01, scenario="other")
    args = parse(["compare", str(a), str(b)])
    with pytest.raises(UserError, match="different scenarios"):
        args.func(args)
    with pytest.raises(UserError, match="different scenarios"):
        compare.compare(load_samples(a), load_samples(b))


def test_runs_differing_in_a_checked_fact_are_refused_unless_mixed(results, capsys):
    a = write_run(results, "a", seed=1, reps=10, cv=0.01)
    env = {"host": "lab1", "host_kernel": "6.1.0-26-amd64", "cpus": 8, "accelerator": "kvm",
           "qemu_version": "8.2.0", "libvirt_version": "9.0.0",
           "cpu_model": "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"}
    b = write_run(results, "b", seed=2, reps=10, cv=0.01, meta={"environment": env})
    args = parse(["compare", str(a), str(b)])
    with pytest.raises(UserError, match="qemu_version: 7.2.13 vs 8.2.0"):
        args.func(args)
    args = parse(["compare", str(a), str(b), "--allow-mixed", "--between-run", "none"])
    assert args.func(args) == 0


def test_a_net_gate_naming_only_workloads_gates_the_kinds_metrics():
    from vbench.stats.compare import Gate

    gate = Gate.from_spec({"workloads": ["tcp"]}, "nic")
    assert gate.covers("tcp", "throughput", "virtio-net")
    assert not gate.covers("other", "throughput", "virtio-net")


# ---- between-run variance ------------------------------------------------------------------------

def test_two_runs_get_a_run_to_run_component_and_ab_does_not(results, capsys):
    """Issue 20, found 2: intervals counted only the repetitions within each night."""
    a, b = pair(results)
    within = compare.compare(load_samples(a), load_samples(b))
    wider = compare.compare(load_samples(a), load_samples(b), between_run_sd=0.02)
    w, v = within.table.iloc[0], wider.table.iloc[0]
    assert v["ci_high"] - v["ci_low"] > 2 * (w["ci_high"] - w["ci_low"])
    args = parse(["compare", str(a), str(b), "--json", str(results / "c.json")])
    try:
        args.func(args)
    except RegressionFound:
        pass
    assert "conservative default" in capsys.readouterr().out  # 1 earlier run: too few
    assert json.loads((results / "c.json").read_text())["between_run_sd"] == 0.02


def test_the_run_to_run_sd_is_estimated_from_history():
    import numpy as np
    import pandas as pd

    from vbench.stats.history import run_to_run_sd

    rng = np.random.default_rng(9)
    rows = []
    for r in range(30):
        shift = rng.normal(0, 0.03)
        for i in range(10):
            rows.append({"run_id": f"r{r:02d}", "scenario": "s", "workload": "w", "metric": "iops",
                         "variant": "v", "device": "disk", "value": 1000 * np.exp(
                             shift + rng.normal(0, 0.02)), "repetition": i})
    sd, runs = run_to_run_sd(pd.DataFrame(rows))
    assert runs == 30 and 0.02 < sd < 0.04
