"""Shared folders for real: virtio-fs against 9p (mapped and passthrough), short runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import vbench

pytestmark = pytest.mark.integration

SMOKE = """
name: smoke-fs
device: fs
repetitions: 1
guest: {vcpus: 2, memory_mib: 1024, machine: pc}
fio_defaults: {runtime: 2, ramp_time: 1, options: {ioengine: libaio, direct: 1, size: 32m}}
variants:
  - {name: virtiofs, fs: {model: virtiofs}}
  - {name: 9p-mapped, fs: {model: 9p, accessmode: mapped}}
  - {name: 9p-passthrough, fs: {model: 9p, accessmode: passthrough}}
workloads:
  - name: randread-4k-qd8
    fio: {rw: randread, bs: 4k, iodepth: 8}
  - name: meta-50
    fsmeta: {files: 50}
"""


def test_virtiofs_and_9p_mount_bind_and_measure(no_leftovers, tmp_path):
    before = _virtiofsd_pids()
    scn = tmp_path / "smoke-fs.yaml"
    scn.write_text(SMOKE)
    cp = vbench("run", str(scn), "--results", str(tmp_path / "r"), "--no-report", timeout=1500)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete", meta["failures"]
    for name, driver, fstype in (("virtiofs", "virtiofs", "virtiofs"),
                                 ("9p-mapped", "9pnet_virtio", "9p"),
                                 ("9p-passthrough", "9pnet_virtio", "9p")):
        check = meta["variants"][name]["drivers"]["fs"]
        assert check["found"] == driver and check["ok"], check
        assert check["detail"] == f"/mnt/vbench-share mounted as {fstype}"
    xml = {n: meta["variants"][n]["domain_xml"] for n in ("virtiofs", "9p-mapped", "9p-passthrough")}
    assert "<driver type='virtiofs'" in xml["virtiofs"] and "<access mode='shared'/>" in xml["virtiofs"]
    assert "accessmode='mapped'" in xml["9p-mapped"] and "<seclabel" not in xml["9p-mapped"]
    assert "accessmode='passthrough'" in xml["9p-passthrough"] and "+0:+0" in xml["9p-passthrough"]
    from vbench.results.rundir import load_samples

    df = load_samples(run_dir)
    m = df.groupby(["variant", "workload", "metric"]).value.median()
    for v in ("virtiofs", "9p-mapped", "9p-passthrough"):
        assert m[(v, "randread-4k-qd8", "iops")] > 0
        for phase in ("create", "stat", "delete"):
            assert m[(v, "meta-50", f"{phase}_rate")] > 0
    # the fio file and the metadata files went to the host directory: nothing is left of either
    # (guest directories are removed), and libvirt stopped the virtiofsd it started
    assert _virtiofsd_pids() - before == set()
    raw = (run_dir / "raw" / "9p-mapped").glob("meta-50-r0.txt")
    text = next(raw).read_text()
    assert text.count("### ") == 3


def _virtiofsd_pids() -> set[int]:
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == "virtiofsd":
                    out.add(int(d.name))
            except OSError:
                pass
    return out
