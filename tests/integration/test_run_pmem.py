"""virtio-pmem (DAX) against virtio-blk for real: both boot, the drivers bind, fio measures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import vbench

pytestmark = pytest.mark.integration

SMOKE = """
name: smoke-pmem
device: pmem
repetitions: 1
guest: {vcpus: 2, memory_mib: 1024, machine: pc}
fio_defaults: {runtime: 2, ramp_time: 1, options: {ioengine: mmap, size: 32m}}
variants:
  - {name: virtio-pmem, pmem: {model: virtio-pmem, size_mib: 256}}
  - {name: virtio-blk, pmem: {model: virtio-blk, size_mib: 256}}
workloads:
  - name: mmap-randwrite-4k
    fio: {rw: randwrite, bs: 4k}
  - name: direct-randread-4k
    fio: {rw: randread, bs: 4k, options: {ioengine: psync, direct: 1}}
"""


def test_virtio_pmem_and_virtio_blk_bind_mount_and_measure(no_leftovers, tmp_path):
    scn = tmp_path / "smoke-pmem.yaml"
    scn.write_text(SMOKE)
    cp = vbench("run", str(scn), "--results", str(tmp_path / "r"), "--no-report", timeout=1200)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete", meta["failures"]
    pm = meta["variants"]["virtio-pmem"]["drivers"]["pmem"]
    assert pm["ok"] and pm["found"] == "virtio_pmem+nd_pmem", pm
    assert pm["detail"].startswith("/dev/pmem0 (nd_pmem") and pm["detail"].endswith("ext4, dax"), pm
    blk = meta["variants"]["virtio-blk"]["drivers"]["pmem"]
    assert blk["ok"] and blk["found"] == "virtio_blk" and not blk["detail"].endswith("dax"), blk
    xml = meta["variants"]["virtio-pmem"]["domain_xml"]
    assert "virtio-pmem-pci,memdev=vbench-pmem" in xml and "<maxMemory slots='2'" in xml
    assert "<serial>vbench-pmem</serial>" in meta["variants"]["virtio-blk"]["domain_xml"]
    from vbench.results.rundir import load_samples

    m = load_samples(run_dir).groupby(["variant", "workload", "metric"]).value.median()
    for v in ("virtio-pmem", "virtio-blk"):
        assert m[(v, "mmap-randwrite-4k", "iops")] > 0
        assert m[(v, "direct-randread-4k", "iops")] > 0
