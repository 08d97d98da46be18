"""Your own guest image: a second image built by another path than vbench's recipe
(tests/ownimage.py: mmdebstrap, a partitioned disk booted by its own GRUB, cloud-init), never
booted by direct kernel boot, with vbench's cloud-init seed for keys and network.

1. ``vbench guest check --boot --image-file`` boots it and reads its running kernel;
2. the smoke disk scenario runs on it: both variants verified, the host key pinned from the seed,
   the image never written (same sha256 before and after), the run records which image it was;
3. a scenario whose workloads need tools the image lacks (iperf3, ping) is refused in one line
   naming them, before anything is measured.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, vbench

sys.path.insert(0, str(ROOT / "tests"))
import ownimage  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_image(lab_ready):
    t0 = time.monotonic()
    disk = ownimage.build(progress=print)
    build = json.loads((disk.parent / "build.json").read_text())
    print(f"\nown image {disk}: built in {build['build_seconds']} s {build['steps']} "
          f"(this session: {time.monotonic() - t0:.1f} s, cached when 0)")
    return disk, build


def _env(disk: Path) -> dict:
    return {"VBENCH_IMAGE_DIRS": str(disk.parent)}


def _scenario(tmp_path: Path, src: str, disk: Path) -> Path:
    text = (ROOT / "scenarios" / src).read_text()
    old = "guest: {vcpus: 2, memory_mib: 1024, machine: pc}"
    assert old in text
    scn = tmp_path / src.replace("smoke-", "smoke-own-")
    text = text.replace(old, f"guest: {{vcpus: 2, memory_mib: 1024, machine: pc, "
                             f"image_file: {disk}}}")
    # the host baseline does not involve the image under test: test_run_disk covers it (~20 s)
    scn.write_text(text.replace("host_baseline: true", "host_baseline: false"))
    return scn


def test_guest_check_boot_on_own_image(own_image, no_leftovers):
    disk, build = own_image
    cp = vbench("guest", "check", "--boot", "--image-file", str(disk), "--json", env=_env(disk),
                timeout=900)
    out = json.loads(cp.stdout)
    assert out["target"] == f"running guest (kernel {build['kernel_release']})"
    states = {o["option"]: o["state"] for o in out["options"]}
    assert states["CONFIG_VIRTIO_BLK"] in ("built-in", "module")
    assert {"virtio_blk", "virtio_net"} <= {b["driver"] for b in out["bound"]}


def test_smoke_disk_on_own_image(own_image, tmp_path, no_leftovers):
    from vbench.results import rundir as store
    from vbench.guest import userimage

    disk, build = own_image
    before = userimage.sha256_file(disk)
    st0 = disk.stat()
    scn = _scenario(tmp_path, "smoke-disk.yaml", disk)
    t0 = time.monotonic()
    cp = vbench("run", str(scn), "--results", str(tmp_path / "results"), "--no-report",
                env=_env(disk), timeout=1500)
    took = time.monotonic() - t0
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run:", 1)[1].strip())
    rec = store.load_record(run_dir)
    assert rec.status == "complete", rec.failures
    assert rec.environment.guest_image == str(disk)
    assert rec.environment.guest_image_key == f"sha256:{before}"
    for name, driver in (("virtio-blk", "virtio_blk"), ("sata", "ahci")):
        v = rec.variants[name]
        assert v.drivers["disk"].found == driver and v.drivers["disk"].ok
        assert v.guest_kernel == build["kernel_release"]
        # booted by its own bootloader with vbench's seed, never by direct kernel boot
        assert "<kernel>" not in v.domain_xml and "<boot dev='hd'/>" in v.domain_xml
        assert "seed.iso" in v.domain_xml and "<readonly/>" in v.domain_xml
    assert userimage.sha256_file(disk) == before, "the user's image was written"
    st1 = disk.stat()  # libvirt was told not to relabel it: owner and mode as they were
    assert (st1.st_uid, st1.st_gid, st1.st_mode) == (st0.st_uid, st0.st_gid, st0.st_mode)
    df = store.load_samples(run_dir)
    med = df[(df.workload == "randread-4k-qd32") & (df.metric == "iops")].groupby(
        "variant")["value"].median()
    assert med["virtio-blk"] > 0 and med["sata"] > 0
    boots = {n: v.boot_seconds for n, v in rec.variants.items() if not v.baseline}
    print(f"\nown image: smoke-disk in {took:.0f} s (boots {boots}), randread-4k-qd32 IOPS "
          f"virtio-blk {med['virtio-blk']:.0f} / sata {med['sata']:.0f} = "
          f"{med['virtio-blk'] / med['sata']:.2f}x")
    print("\n".join(line for line in cp.stdout.splitlines() if " vs " in line or "better in" in line))


def test_missing_tools_refuse_the_run_in_one_line(own_image, tmp_path, no_leftovers):
    disk, _ = own_image
    scn = _scenario(tmp_path, "smoke-net.yaml", disk)
    cp = vbench("run", str(scn), "--results", str(tmp_path / "results"), "--no-report",
                env=_env(disk), timeout=900, check=False)
    assert cp.returncode != 0
    err = [line for line in cp.stderr.splitlines() if "lacks what this scenario runs" in line]
    assert err == [f"vbench: error: guest image {disk.name} lacks what this scenario runs in the guest: "
                   f"iperf3 (for tcp-1, udp-64b), ping (for rtt); install it in the image"], cp.stderr
    rec = json.loads(next((tmp_path / "results").iterdir()).joinpath("run.json").read_text())
    assert rec["status"] != "complete"
    assert not any(p.name.startswith("samples") and p.stat().st_size > 200
                   for p in next((tmp_path / "results").iterdir()).iterdir())
