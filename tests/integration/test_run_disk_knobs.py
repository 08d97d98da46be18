"""Emulated NVMe, qcow2 backing and the virtio-blk knobs on q35, booted for real (short runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import vbench

pytestmark = pytest.mark.integration

SMOKE = """
name: smoke-disk-knobs
device: disk
repetitions: 1
guest: {vcpus: 2, memory_mib: 1024, machine: q35}
defaults:
  disk: {size_gib: 0.25}
fio_defaults: {runtime: 2, ramp_time: 1}
variants:
  - name: nvme
    disk: {bus: nvme, size_gib: 0.25}
  - name: virtio-qcow2-knobs
    disk: {bus: virtio, format: qcow2, iothread: true, queues: 2, size_gib: 0.25}
workloads:
  - name: randread-4k-qd32
    fio: {rw: randread, bs: 4k, iodepth: 32}
"""


def test_nvme_and_qcow2_knobs_on_q35(no_leftovers, tmp_path):
    scn = tmp_path / "smoke-disk-knobs.yaml"
    scn.write_text(SMOKE)
    cp = vbench("run", str(scn), "--results", str(tmp_path / "r"), "--reports", str(tmp_path / "p"),
                "--no-report", timeout=1200)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete", meta["failures"]
    nvme, knobs = meta["variants"]["nvme"], meta["variants"]["virtio-qcow2-knobs"]
    assert nvme["drivers"]["disk"]["found"] == "nvme" and nvme["drivers"]["disk"]["ok"]
    assert "nvme0n1" in nvme["drivers"]["disk"]["detail"]
    assert "bus=pcie.0" in nvme["domain_xml"] and "machine='q35'" in nvme["domain_xml"]
    assert knobs["drivers"]["disk"]["found"] == "virtio_blk"
    assert knobs["profile"]["disk"]["format"] == "qcow2"
    assert (knobs["profile"]["disk"]["iothread"], knobs["profile"]["disk"]["queues"]) == (True, 2)
    assert "iothread='1'" in knobs["domain_xml"] and "queues='2'" in knobs["domain_xml"]
    from vbench.results.rundir import load_samples

    df = load_samples(run_dir)
    iops = df[(df.metric == "iops")].groupby("variant").value.median()
    assert iops["nvme"] > 0 and iops["virtio-qcow2-knobs"] > 0
    assert set(df[df.variant == "nvme"].paravirtual) == {False}


def test_ide_on_q35_refused_before_anything_boots(lab_ready, tmp_path):
    scn = tmp_path / "ide-q35.yaml"
    scn.write_text(SMOKE.replace("bus: nvme", "bus: ide"))
    cp = vbench("run", str(scn), "--results", str(tmp_path / "r"), check=False, timeout=120)
    assert cp.returncode == 3
    err = cp.stderr.strip().splitlines()
    assert len(err) == 1 and "q35 has no IDE controller" in err[0]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
