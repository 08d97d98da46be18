"""virtio-mem against the virtio balloon for real: give 512 MiB back and take it again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import vbench

pytestmark = pytest.mark.integration

SMOKE = """
name: smoke-mem
device: mem
repetitions: 1
guest: {vcpus: 2, memory_mib: 1024, machine: pc}
variants:
  - {name: virtio-mem, mem: {model: virtio-mem, size_mib: 512}}
  - {name: balloon, mem: {model: balloon}}
workloads:
  - name: give-back-512
    balloon: {target_mib: 512, touch_mib: 400, timeout_s: 60}
"""


def test_virtio_mem_and_balloon_give_back_and_take_back(no_leftovers, tmp_path):
    scn = tmp_path / "smoke-mem.yaml"
    scn.write_text(SMOKE)
    cp = vbench("run", str(scn), "--results", str(tmp_path / "r"), "--no-report", timeout=1200)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete", meta["failures"]
    for v, driver in (("virtio-mem", "virtio_mem"), ("balloon", "virtio_balloon")):
        drivers = meta["variants"][v]["drivers"]
        assert drivers["mem"]["ok"] and drivers["mem"]["found"] == driver, drivers
        assert "balloon" not in drivers  # mem took the balloon's place
    xml = meta["variants"]["virtio-mem"]["domain_xml"]
    assert "<memory model='virtio-mem'>" in xml and "<memballoon model='none'/>" in xml
    from vbench.results.rundir import load_samples

    m = load_samples(run_dir).groupby(["variant", "workload", "metric"]).value.median()
    for v in ("virtio-mem", "balloon"):
        w = (v, "give-back-512")
        assert m[w + ("balloon_supported",)] == 1.0
        gone = m[w + ("guest_mem_before",)] - m[w + ("guest_mem_shrunk",)]
        assert 448 <= gone <= 576, (v, gone)  # the guest saw 512 MiB go
        back = m[w + ("guest_mem_after",)] - m[w + ("guest_mem_shrunk",)]
        assert 448 <= back <= 576, (v, back)
        assert m[w + ("host_mem_returned",)] > 100, v  # touched memory went back to the host
        assert 0 < m[w + ("balloon_inflate_time",)] < 60
