"""`vbench run --connect` against a libvirtd of the user's (not the lab's), end to end.

The test starts a libvirtd the way a distribution does, but with its own state and runtime
directories, its own virtlogd and its own network namespace (tests/ownlibvirtd.py). In it, "the
user" already has a network on 10.254.0.0/16 (colliding with vbench's default subnets) and a tiny
busybox guest running on it. Then:

1. `vbench run --connect` with the default subnets refuses with one line and adds nothing;
2. with VBENCH_MGMT_SUBNET / VBENCH_TEST_SUBNET set it runs scenarios/smoke-disk.yaml; every domain
   that appears meanwhile is tagged as vbench's, and afterwards only the user's guest is left,
   never restarted;
3. `vbench lab down` removes vbench's two networks from that libvirt and nothing else.

vbench runs inside the test's network namespace (as it would on the user's host), so every
packet stays in it. Its state lives in a temporary VBENCH_HOME, so the lab is not touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/
from ownlibvirtd import (DomainWatcher, OwnLibvirtd, busybox_initrd, separate_home,  # noqa: E402
                         users_domain_xml,
                         users_network_xml)
from pgcluster import process_running  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USERS_GUEST = "users-own-guest"
USERS_NET = "users-lan"
SUBNETS = {"VBENCH_MGMT_SUBNET": "10.231.0.0/24", "VBENCH_TEST_SUBNET": "10.231.1.0/24"}


@pytest.fixture(scope="module")
def own(lab_ready):
    """The user's libvirtd; lab_ready only guarantees the guest image is built."""
    if shutil.which("unshare") is None or not Path("/bin/busybox").exists():
        pytest.skip("needs util-linux unshare and busybox-static")
    lv = OwnLibvirtd.start(f"vbench-own-{os.getpid()}")
    yield lv
    pids = [lv.pid("libvirtd"), lv.pid("virtlogd")]
    lv.stop()
    assert not any(p and process_running(p) for p in pids), "the user's daemons survived"
    assert not Path(f"/run/netns/{lv.netns}").exists()


@pytest.fixture(scope="module")
def home(own):
    """A VBENCH_HOME of its own, sharing only the built images (and the accelerator probe)."""
    h = separate_home("vbench-home-")
    yield h
    shutil.rmtree(h, ignore_errors=True)


def _vbench(own: OwnLibvirtd, home: Path, *args: str, env: dict | None = None, timeout: int = 1200):
    """The real CLI, run inside the user's network namespace (as on the user's host)."""
    return subprocess.run(own.exec_argv([sys.executable, "-m", "vbench", *args]), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "VBENCH_HOME": str(home), **(env or {})})


def _users_guest(conn, own: OwnLibvirtd):
    from vbench.host import images

    img = images.find_default()
    assert img is not None, "no guest image (lab_ready builds it)"
    initrd, console = own.base / "users-initrd.cpio", own.base / "users-console.log"
    busybox_initrd(initrd)
    net = conn.networkDefineXML(users_network_xml(USERS_NET, "usrbr0", "10.254.0.1", "255.255.0.0"))
    net.create()
    dom = conn.defineXML(users_domain_xml(USERS_GUEST, img.kernel, initrd, console, USERS_NET))
    dom.create()
    deadline = time.monotonic() + 120
    while "USERS-GUEST-UP" not in (console.read_text(errors="replace") if console.exists() else ""):
        assert time.monotonic() < deadline, "the user's busybox guest did not boot"
        time.sleep(1)
    return dom, console


def _state(conn) -> tuple[dict, dict]:
    doms = {d.name(): (d.ID(), d.UUIDString(), d.isActive()) for d in conn.listAllDomains()}
    nets = {n.name(): (n.isActive(), n.XMLDesc()) for n in conn.listAllNetworks()}
    return doms, nets



def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def test_run_against_the_users_own_libvirtd(own, home, tmp_path):
    import libvirt

    from vbench.core import paths
    from vbench.results import rundir as store
    from vbench.host import libvirtd

    lab_state = paths.lab_dir() / "state.json"
    lab_state_before = _digest(lab_state)
    host_etc_before = sorted(p.name for p in Path("/etc/libvirt/qemu").rglob("*"))
    conn = libvirt.open(own.uri)
    try:
        dom, console = _users_guest(conn, own)
        doms0, nets0 = _state(conn)
        assert set(doms0) == {USERS_GUEST} and set(nets0) == {"default", USERS_NET}

        # 1. default subnets collide with the user's network: one line, nothing added
        cp = _vbench(own, home, "run", "scenarios/smoke-disk.yaml", "--connect", own.uri,
                     "--results", str(tmp_path / "results"), "--no-report")
        assert cp.returncode == 4, cp.stderr
        err = cp.stderr.strip()
        assert len(err.splitlines()) == 1 and USERS_NET in err and "VBENCH_MGMT_SUBNET" in err
        assert _state(conn) == (doms0, nets0)

        # 2. with other subnets it runs; every domain that appears is vbench's (tagged)
        # smoke-disk without its host baseline: the baseline runs on this machine either way and
        # test_run_disk covers it; here the user's libvirtd is under test (about 20 s less)
        scn = tmp_path / "smoke-disk-connect.yaml"
        scn.write_text((ROOT / "scenarios/smoke-disk.yaml").read_text().replace(
            "host_baseline: true", "host_baseline: false"))
        watcher = DomainWatcher(own.uri)
        watcher.start()
        t0 = time.monotonic()
        cp = _vbench(own, home, "run", str(scn), "--connect", own.uri,
                     "--results", str(tmp_path / "results"), "--no-report", env=SUBNETS)
        took = time.monotonic() - t0
        watcher.stop_flag.set()
        watcher.join(10)
        assert cp.returncode == 0, f"stdout:\n{cp.stdout[-3000:]}\nstderr:\n{cp.stderr[-3000:]}"
        others = {n: t for n, t in watcher.seen.items() if n != USERS_GUEST}
        assert others, "the watcher saw no vbench guest: it observed nothing"
        assert all(t is not None and t.get("owner") == "vbench" and n.startswith(libvirtd.DOMAIN_PREFIX)
                   for n, t in others.items()), others
        doms1, nets1 = _state(conn)
        assert doms1 == doms0, "vbench left a guest, or touched the user's guest"
        assert console.read_text(errors="replace").count("USERS-GUEST-UP") == 1  # never rebooted
        assert nets1[USERS_NET] == nets0[USERS_NET] and nets1["default"] == nets0["default"]
        assert nets1["vbench-mgmt"][0] and "10.231.0.1" in nets1["vbench-mgmt"][1]
        assert nets1["vbench-test"][0] and "10.231.1.1" in nets1["vbench-test"][1]

        run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run:", 1)[1].strip())
        rec = store.load_record(run_dir)
        assert rec.status == "complete", rec.failures
        assert rec.environment.libvirt_uri == own.uri
        assert {n: v.verified for n, v in rec.variants.items() if not v.baseline} == \
            {"virtio-blk": True, "sata": True}
        df = store.load_samples(run_dir)
        med = df[(df.workload == "randread-4k-qd32") & (df.metric == "iops")].groupby(
            "variant")["value"].median()
        print(f"\n--connect own libvirtd: smoke-disk in {took:.0f} s, randread-4k-qd32 IOPS "
              f"virtio-blk {med['virtio-blk']:.0f} / sata {med['sata']:.0f} = "
              f"{med['virtio-blk'] / med['sata']:.2f}x")
        assert med["virtio-blk"] > 0 and med["sata"] > 0
        # QEMU's host CPU was measured although that daemon's runtime files are not in /run/libvirt
        cpu = df[df.metric == "host_cpu_per_io"].groupby("variant")["value"].median()
        assert set(cpu.index) == {"virtio-blk", "sata"} and (cpu > 0).all()

        # 3. lab down removes vbench's networks from that libvirt, and nothing else
        cp = _vbench(own, home, "lab", "down", env=SUBNETS, timeout=300)
        assert cp.returncode == 0, cp.stderr
        doms2, nets2 = _state(conn)
        assert doms2 == doms0 and nets2 == nets0
    finally:
        conn.close()
    assert sorted(p.name for p in Path("/etc/libvirt/qemu").rglob("*")) == host_etc_before
    assert _digest(lab_state) == lab_state_before, "the lab's record was changed"
