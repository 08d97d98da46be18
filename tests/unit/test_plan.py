"""`vbench plan`: what would boot, the units in order, the estimate (budget.estimate_seconds, the
figure `run` prints first) and what this host would refuse; the estimate is held against the
measured wall time of a stored run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vbench.scenario import budget
from vbench.commands.plan import estimate_line
from vbench.scenario.schema import load_scenario, load_scenario_text

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "tests/data/runs/20261126-113024-smoke-disk"


def _cli(tmp_path, *args, cwd=None):
    env = {**os.environ, "VBENCH_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "vbench", *args], cwd=cwd or tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("record, cpus", [
    (RUN / "run.json", 1),  # 2026-11-26: its two guests booted one after the other
    (ROOT / "tests/data/estimate/tiny-20261206.json", 2),  # side by side on 2 CPUs
])
def test_estimate_within_a_quarter_of_a_measured_run(record, cpus):
    rec = json.loads(record.read_text())
    scn = load_scenario_text(rec["scenario"]["text"])
    est = budget.estimate_seconds(scn, rec["repetitions"], cpus)
    wall = rec["timing"][0]["wall_s"]
    assert abs(est - wall) / wall < 0.25, (est, wall)


@pytest.mark.parametrize("cpus, fresh, waves", [(None, False, 5), (1, False, 5), (2, False, 3),
                                                (4, False, 2), (64, False, 2), (4, True, 15)])
def test_boots_side_by_side_count_once_per_wave(cpus, fresh, waves):
    text = ("name: w\ndevice: disk\nrepetitions: 3\n" + ("fresh_boot: true\n" if fresh else "")
            + "variants:\n" + "".join(f"  - {{name: v{i}, disk: {{bus: virtio}}}}\n" for i in range(5))
            + "workloads: [{name: r, fio: {rw: randread}}]\n")
    scn = load_scenario_text(text)
    assert budget.boot_waves(scn, 3, cpus) == waves
    base = budget.estimate_seconds(scn, 3, cpus) - waves * budget.BOOT_ESTIMATE_S
    assert base == pytest.approx(budget.estimate_seconds(scn, 3, 1) - budget.boot_waves(scn, 3, 1)
                                 * budget.BOOT_ESTIMATE_S)
    assert f"in {waves} wave(s)" in estimate_line(scn, 3, cpus) or waves == (15 if fresh else 5)


def test_plan_of_a_shipped_scenario_by_name(tmp_path):
    cp = _cli(tmp_path, "plan", "smoke-disk")  # found by name, from any directory
    assert cp.returncode == 0, cp.stderr
    scn = load_scenario(ROOT / "scenarios/smoke-disk.yaml")
    out = cp.stdout
    assert "what boots" in out and "virtio-blk" in out and "disk*" in out
    assert "units in measuring order (12):" in out
    assert estimate_line(scn, 2, budget.host_figures().cpus) in out
    assert "this host would run it" in out


def test_plan_says_what_this_host_would_refuse(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("name: big\ndevice: nic\nguest: {memory_mib: 262144}\nvariants:\n"
                 "  - {name: a, nic: {model: virtio, vhost: true}}\n  - {name: b, nic: {model: e1000}}\n"
                 "workloads:\n  - {name: p, ping: {}}\n")
    cp = _cli(tmp_path, "plan", str(f))
    assert cp.returncode == 3
    refused = cp.stdout.split("this host would refuse it:")[1]
    assert "guest.memory_mib" in refused
    if not Path("/dev/vhost-net").exists():
        assert "/dev/vhost-net" in refused


def test_plan_of_a_bad_scenario_lists_every_problem(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: b\ndevice: disk\nvariants: [{name: a, disk: {bus: usb}}]\n"
                 "workloads: [{name: w, fio: {rw: rread}}]\n")
    cp = _cli(tmp_path, "plan", str(f))
    assert cp.returncode == 3 and len(cp.stderr.strip().splitlines()) == 2, cp.stderr


@pytest.mark.parametrize("name", ["disk", "smoke-disk"])
def test_run_prints_the_estimate_first(tmp_path, monkeypatch, capsys, name):
    from vbench.run import runner
    from vbench.commands import main
    from vbench.core.errors import LabError

    def stop(*_a, **_k):
        raise LabError("stopped before the lab")  # nothing boots in a unit test

    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(runner, "run_scenario", stop)
    assert main(["run", name, "--results", str(tmp_path / "r")]) == 4
    out = capsys.readouterr().out.splitlines()
    scn = load_scenario(ROOT / f"scenarios/{name}.yaml")
    assert out[0] == estimate_line(scn, scn.max_repetitions, budget.host_figures().cpus)
