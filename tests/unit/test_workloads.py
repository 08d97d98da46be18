"""The workload registry: every tool declares its facts once, and a new workload is one file plus
one registration line (a toy one runs through the real run loop below)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vbench.core.metrics import is_known
from vbench.run import executors
from vbench.run.session import headline_metric, unit_estimate
from vbench.scenario import budget
from vbench.scenario.schema import TOOLS, Workload, load_scenario_text
from vbench.workloads import MODULES, WORKLOADS, WorkloadKind, register

SRC = Path(__file__).resolve().parents[2] / "src"


def test_every_tool_is_declared_executable_and_in_the_catalogue():
    assert tuple(WORKLOADS) == TOOLS == MODULES
    for tool, kind in WORKLOADS.items():
        assert tool in executors.EXECUTORS or kind.runs_itself, tool
        assert kind.headline in kind.metrics and all(is_known(m) for m in kind.metrics), tool


def test_headline_metric_comes_from_the_declaration():
    assert headline_metric(Workload.model_validate({"name": "p", "ping": {}})) == "rtt_p50"
    assert headline_metric(Workload.model_validate({"name": "r", "fio": {"rw": "randread"}})) == "iops"
    assert headline_metric(Workload.model_validate({"name": "s", "fio": {"rw": "read"}})) == "bw"


def test_the_budget_and_the_live_estimate_are_the_same_number():
    """Two estimate tables had drifted apart (fio +2 s vs +1.5 s; fsmeta and bytestream 10 s
    against timeouts of 300 s); both now ask the workload."""
    scn = load_scenario_text("""
name: e
device: disk
variants: [{name: a, disk: {bus: virtio}}]
fio_defaults: {runtime: 7, ramp_time: 1}
workloads:
  - {name: f, fio: {rw: randread}}
  - {name: i, iperf3: {duration: 5, omit: 1}}
  - {name: m, fsmeta: {files: 5000}}
  - {name: b, bytestream: {g2h_bytes: 8388608}}
""")
    for i, w in enumerate(scn.workloads):
        assert budget.unit_seconds(scn, i) == unit_estimate(scn, w.name) > 0
    assert budget.unit_seconds(scn, 0) == 7 + 1 + 1.0
    assert budget.unit_seconds(scn, 1) == (5 + 1 + 2.0) * 2  # both directions
    assert budget.unit_seconds(scn, 2) > 60 and budget.unit_seconds(scn, 3) > 60


def test_a_users_image_is_checked_for_what_fsmeta_runs():
    """fsmeta runs fio in the guest; the guest-tools table that omitted it is gone."""
    from vbench.guest.userimage import required_tools

    scn = load_scenario_text("""
name: t
device: fs
variants: [{name: v, fs: {model: virtiofs}}]
workloads: [{name: meta, fsmeta: {}}]
""")
    assert required_tools(scn) == {"fio": ["meta"]}


def test_declarations_are_checked_when_registered():
    class NoSuchMetric(WorkloadKind):
        tool, spec, metrics, headline = "bad", object, ("iops", "frobs"), "iops"  # type: ignore[assignment]

    with pytest.raises(TypeError, match="frobs"):
        register(NoSuchMetric())
    with pytest.raises(TypeError, match="registered twice"):
        register(WORKLOADS["ping"])


TOY_MODULE = '''
from typing import Any
from pydantic import Field
from vbench.core.metrics import Sample
from vbench.devices.base import Strict
from vbench.workloads.base import WorkloadKind


class ToySpec(Strict):
    spins: int = Field(3, ge=1, le=10)


class Toy(WorkloadKind):
    tool = "toy"
    spec = ToySpec
    metrics = ("rtt_p50",)
    headline = "rtt_p50"
    guest_tools = ("true",)

    def estimate_s(self, spec: Any, scn: Any) -> float:
        return 1.5 * spec.spins

    def run(self, scn, w, target):
        res = target.guest.ssh.run(f"spin {w.toy.spins}")
        return [Sample(w.name, "rtt_p50", 10.0 * w.toy.spins, "us")], res.command


WORKLOAD = Toy()
'''

DRIVER = r'''
import json, sys
import toy_workload
import vbench.workloads as workloads

workloads.register(toy_workload.WORKLOAD)  # the one registration line (MODULES in-tree)

sys.path.insert(0, sys.argv[2])
from test_session import FakeGuests, make_session
from vbench.results import rundir as store
from vbench.run import executors
from vbench.scenario import budget
from vbench.scenario.schema import load_scenario_text
from vbench.guest.userimage import required_tools

scn = load_scenario_text(sys.argv[1])
s = make_session(sys.argv[3], scn, guests=FakeGuests(), execute=executors.execute)
s.run()
rows = [r for r in store.iter_sample_rows(s.rd.path)]
print(json.dumps({"values": sorted({r["value"] for r in rows}), "metrics": sorted({r["metric"] for r in rows}),
                  "units": sorted({r["unit"] for r in rows}), "estimate": budget.unit_seconds(scn, 0),
                  "tools": required_tools(scn)}))
'''

TOY_SCENARIO = """
name: toy
device: disk
repetitions: 3
variants: [{name: A, disk: {bus: virtio}}, {name: B, disk: {bus: sata}}]
workloads: [{name: t, toy: {spins: 4}}]
"""


def test_a_new_workload_is_one_file_and_one_registration_line(tmp_path):
    (tmp_path / "toy_workload.py").write_text(TOY_MODULE)
    env = {"PYTHONPATH": f"{SRC}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    cp = subprocess.run([sys.executable, "-c", DRIVER, TOY_SCENARIO, str(Path(__file__).parent),
                         str(tmp_path / "results")], capture_output=True, text=True, timeout=120,
                        env=env, cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr[-3000:]
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    assert out["metrics"] == ["rtt_p50"] and out["units"] == ["us"] and out["values"] == ["40.0"]
    assert out["estimate"] == 6.0 and out["tools"] == {"true": ["t"]}
