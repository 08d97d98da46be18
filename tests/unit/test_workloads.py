"""The workload registry: every tool declares its facts once, and a new workload is one file plus
one registration line (a toy one runs through the real run loop below)."""

from __future__ import annotations

import pytest

from vbench.core.metrics import is_known
from vbench.run.session import headline_metric, unit_estimate
from vbench.scenario import budget
from vbench.scenario.schema import TOOLS, Workload, load_scenario_text
from vbench.workloads import MODULES, WORKLOADS, WorkloadKind, register

from .toys import run_toy


def test_every_tool_is_declared_executable_and_in_the_catalogue():
    assert tuple(WORKLOADS) == TOOLS == MODULES
    for tool, kind in WORKLOADS.items():
        assert type(kind).run is not WorkloadKind.run, tool
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

    class NoExecutor(WorkloadKind):
        tool, spec, metrics, headline = "lazy", object, ("iops",), "iops"  # type: ignore[assignment]

    with pytest.raises(TypeError, match="frobs"):
        register(NoSuchMetric())
    with pytest.raises(TypeError, match="lazy does not declare run"):
        register(NoExecutor())
    with pytest.raises(TypeError, match="registered twice"):
        register(WORKLOADS["ping"])


TOY_MODULE = '''
from typing import Any
from pydantic import Field
from vbench.core.metrics import Sample
from vbench.devices.base import Strict
from vbench.workloads.base import RunningUnit, WorkloadKind


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

    def run(self, scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
        res = unit.guest("toy").run(f"spin {w.toy.spins}", timeout=10)
        return [Sample(w.name, "rtt_p50", 10.0 * w.toy.spins, "us")], res.command


WORKLOAD = Toy()
'''

DRIVER = """
from vbench.scenario import budget
from vbench.guest.userimage import required_tools

rows = run(FakeGuests())
out = {"values": sorted({r["value"] for r in rows}), "metrics": sorted({r["metric"] for r in rows}),
       "units": sorted({r["unit"] for r in rows}), "estimate": budget.unit_seconds(scn, 0),
       "tools": required_tools(scn)}
"""

TOY_SCENARIO = """
name: toy
device: disk
repetitions: 3
variants: [{name: A, disk: {bus: virtio}}, {name: B, disk: {bus: sata}}]
workloads: [{name: t, toy: {spins: 4}}]
"""


def test_a_new_workload_is_one_file_and_one_registration_line(tmp_path):
    out = run_toy(tmp_path, "toy_workload", TOY_MODULE, DRIVER, TOY_SCENARIO)
    assert out["metrics"] == ["rtt_p50"] and out["units"] == ["us"] and out["values"] == ["40.0"]
    assert out["estimate"] == 6.0 and out["tools"] == {"true": ["t"]}
