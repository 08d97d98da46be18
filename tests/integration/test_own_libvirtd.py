"""`vbench run --connect` against a libvirtd of the user's (not the lab's), end to end.

The test starts a libvirtd the way a distribution does, but with its own state and runtime
directories, its own virtlogd and its own network namespace (tests/ownlibvirtd.py). In it, "the
user" already has a network on 10.254.0.0/16 (colliding with vbench's default subnets) and a tiny
busybox guest running on it. Then:

1. `vbench run --connect` with the default subnets refuses with one line and adds nothing;
2. with VBENCH_MGMT_SUBNET / VBENCH_TEST_SUBNET set, `vbench fleet run` over two hosts of this
   machine, the lab and that libvirtd, runs tests/data/scenarios/tiny.yaml on each, one after the
   other (the second host's child is the plain `vbench run --connect` inside the user's network
   namespace); every domain that appears in the user's libvirt meanwhile is tagged as vbench's,
   and afterwards only the user's guest is left, never restarted; `vbench fleet compare` and
   `fleet report` put both hosts side by side;
3. `vbench lab down` removes vbench's two networks from that libvirt and nothing else;
4. Ctrl-C to a fleet run while the lab's first guest boots stops it: that host's run is
   interrupted and cleans up, the second host never starts.

(The fleet and the `--connect` run share one daemon and one run: a run of their own each cost
the suite about two minutes.) vbench runs inside the test's network namespace (as it would on
the user's host), so every packet stays in it. The user's host has its own VBENCH_HOME (sharing
only the built images), so the lab's record is never touched by that host's run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/
from ownlibvirtd import (DomainWatcher, OwnLibvirtd, busybox_initrd, separate_home,  # noqa: E402
                         users_domain_xml,
                         users_network_xml)
from .conftest import vbench  # noqa: E402
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
    """A VBENCH_HOME of its own, sharing only the built images (and the accelerator probe), under
    the only place a hosts file may put a home."""
    from vbench.core.paths import FLEET_HOMES

    h = separate_home("fleet-home-", root=FLEET_HOMES)
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


def _when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


def _hosts_file(tmp_path: Path, own: OwnLibvirtd, home: Path) -> Path:
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(json.dumps({"hosts": [
        {"name": "lab"},
        {"name": "own-libvirtd", "connect": own.uri, "netns": own.netns,
         "env": {**SUBNETS, "VBENCH_HOME": str(home)}}]}))
    return hosts


def _host_logs(fleet: Path) -> str:
    """What each host's child printed last (a failed fleet run: which host, and why)."""
    return "\n".join(f"--- {log.parent.name}:\n{log.read_text(errors='replace')[-2500:]}"
                     for log in sorted((fleet / "hosts").glob("*/run.log")))


def test_fleet_over_the_lab_and_the_users_own_libvirtd(own, home, tmp_path, no_leftovers):
    import libvirt

    from vbench.core import paths
    from vbench.results import rundir as store
    from vbench.host import libvirtd, networks

    lab_state = paths.lab_dir() / "state.json"
    lab_state_before = _digest(lab_state)
    host_etc_before = sorted(p.name for p in Path("/etc/libvirt/qemu").rglob("*"))
    conn = libvirt.open(own.uri)
    try:
        dom, console = _users_guest(conn, own)
        doms0, nets0 = _state(conn)
        assert set(doms0) == {USERS_GUEST} and set(nets0) == {"default", USERS_NET}

        # 1. default subnets collide with the user's network: one line, nothing added
        cp = _vbench(own, home, "run", "tests/data/scenarios/tiny.yaml", "--connect", own.uri,
                     "--results", str(tmp_path / "results"), "--no-report")
        assert cp.returncode == 4, cp.stderr
        err = cp.stderr.strip()
        assert len(err.splitlines()) == 1 and USERS_NET in err and "VBENCH_MGMT_SUBNET" in err
        assert _state(conn) == (doms0, nets0)

        # 2. a fleet over the lab and this libvirtd, with other subnets for the latter; every
        # domain that appears in the user's libvirt is vbench's (tagged).
        # tests/data/scenarios/tiny.yaml: virtio-blk against SATA, one short job, no host baseline
        # (smoke-disk's whole code path is covered elsewhere; here the hosts are under test)
        fleet = tmp_path / "fleet"
        watcher = DomainWatcher(own.uri)
        watcher.start()
        t0 = time.monotonic()
        cp = vbench("fleet", "run", "tests/data/scenarios/tiny.yaml",
                    "--hosts", str(_hosts_file(tmp_path, own, home)), "--out", str(fleet),
                    timeout=2400, check=False)
        took = time.monotonic() - t0
        watcher.stop_flag.set()
        watcher.join(10)
        assert cp.returncode == 0, f"stdout:\n{cp.stdout[-2500:]}\n{_host_logs(fleet)}"
        out = cp.stdout
        assert "machine 1: lab, own-libvirtd (one after another (same machine))" in out
        assert "[lab] " in out and "[own-libvirtd] " in out  # progress says which host does what

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

        doc = json.loads((fleet / "fleet.json").read_text())
        assert doc["status"] == "complete"
        by = {h["name"]: h for h in doc["hosts"]}
        assert set(by) == {"lab", "own-libvirtd"}
        assert by["lab"]["group"] == by["own-libvirtd"]["group"]
        assert by["lab"]["machine"] == by["own-libvirtd"]["machine"]
        runs = {n: fleet / h["run"] for n, h in by.items()}
        recs = {n: store.load_record(p) for n, p in runs.items()}
        assert all(r.status == "complete" and not r.failures for r in recs.values())
        assert recs["own-libvirtd"].environment.libvirt_uri == own.uri
        assert recs["lab"].environment.libvirt_uri != own.uri
        # a user's libvirt keeps libvirt's isolation rules (its host has uplinks); the record says so
        assert recs["own-libvirtd"].environment.test_network == networks.firewall_fact("isolated")
        assert recs["lab"].environment.test_network == networks.firewall_fact("open")
        for n, rec in recs.items():
            assert {v: x.verified for v, x in rec.variants.items() if not x.baseline} == \
                {"virtio-blk": True, "sata": True}, n
            df = store.load_samples(runs[n])
            iops = df[(df.workload == "randread") & (df.metric == "iops")]
            assert set(iops.variant) == {"virtio-blk", "sata"} and (iops.value > 0).all(), n
            # QEMU's host CPU was measured, on the user's libvirtd too (its runtime files are not
            # in /run/libvirt)
            cpu = df[df.metric == "host_cpu_per_io"].groupby("variant")["value"].median()
            assert set(cpu.index) == {"virtio-blk", "sata"} and (cpu > 0).all(), n
        # one machine: the two runs did not overlap in time (by the runs' own records, and the index)
        first, second = sorted(recs.values(), key=lambda r: r.started)
        assert _when(first.finished) <= _when(second.started), (first.finished, second.started)
        a, b = sorted(by.values(), key=lambda h: h["started"])
        assert a["finished"] <= b["started"]

        cp = vbench("fleet", "compare", str(fleet))
        print(f"\nfleet of 2 hosts on one machine (the lab, a user's own libvirtd) in {took:.0f} s"
              f"\n{cp.stdout}")
        lines = cp.stdout.splitlines()
        head = next(ln for ln in lines if ln.startswith("workload"))
        assert head.split()[-2:] == ["lab", "own-libvirtd"]
        row = next(ln for ln in lines if ln.startswith("randread ") and " IOPS " in ln)
        assert row.count("\u00d7") >= 6 and " - " not in row  # a ratio and interval per host
        html = (fleet / "report" / "index.html").read_text()
        assert "<h3>lab <span" in html and "<h3>own-libvirtd <span" in html

        # 3. lab down removes vbench's networks from that libvirt, and nothing else
        cp = _vbench(own, home, "lab", "down", env=SUBNETS, timeout=300)
        assert cp.returncode == 0, cp.stderr
        doms2, nets2 = _state(conn)
        assert doms2 == doms0 and nets2 == nets0
    finally:
        conn.close()
    assert sorted(p.name for p in Path("/etc/libvirt/qemu").rglob("*")) == host_etc_before
    assert _digest(lab_state) == lab_state_before, "the lab's record was changed"


def test_ctrl_c_stops_the_fleet_and_leaves_no_guest(own, home, tmp_path, no_leftovers):
    """SIGINT to `vbench fleet run` (a terminal's Ctrl-C) while the first host's guest boots: that
    host's run is interrupted and cleans up, the second host never starts, the index says so."""
    import libvirt

    fleet = tmp_path / "fleet"
    p = subprocess.Popen([sys.executable, "-m", "vbench", "fleet", "run",
                          "tests/data/scenarios/tiny.yaml", "--hosts",
                          str(_hosts_file(tmp_path, own, home)), "--out", str(fleet)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    watchdog = threading.Timer(900, p.kill)
    watchdog.start()
    seen = []
    try:
        assert p.stdout is not None
        for line in p.stdout:
            seen.append(line)
            if line.startswith("[lab] ") and ": started (" in line:  # a guest of the lab is up
                break
        os.kill(p.pid, signal.SIGINT)
        rest, _ = p.communicate(timeout=600)
    finally:
        watchdog.cancel()
    out = "".join(seen) + rest
    print(f"\nfleet run interrupted with SIGINT:\n{out[-1500:]}")
    assert p.returncode == 130, out[-4000:]
    assert "[lab] vbench: interrupted" in out
    doc = json.loads((fleet / "fleet.json").read_text())
    by = {h["name"]: h for h in doc["hosts"]}
    assert doc["status"] == "interrupted"
    assert by["lab"]["status"] == "interrupted" and by["lab"]["exit_status"] == 130
    assert by["own-libvirtd"]["status"] == "skipped"
    conn = libvirt.open(own.uri)
    try:  # the second host never started: only the user's own guest may be there
        assert [d.name() for d in conn.listAllDomains() if d.name() != USERS_GUEST] == []
    finally:
        conn.close()
