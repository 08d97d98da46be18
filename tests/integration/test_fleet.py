"""`vbench fleet run` over two hosts of this machine: the lab's libvirtd and a user's own libvirtd
(tests/ownlibvirtd.py, its own state and network namespace, other subnets). Both are this
machine, so the fleet must run them one after another; then `vbench fleet compare` puts them
side by side and `vbench fleet report` writes one page with both.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import ROOT, vbench

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/
from ownlibvirtd import OwnLibvirtd, separate_home  # noqa: E402

pytestmark = pytest.mark.integration
SUBNETS = {"VBENCH_MGMT_SUBNET": "10.232.0.0/24", "VBENCH_TEST_SUBNET": "10.232.1.0/24"}


@pytest.fixture(scope="module")
def own(lab_ready):
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    lv = OwnLibvirtd.start(f"vbench-fleet-{os.getpid()}")
    yield lv
    lv.stop()


@pytest.fixture(scope="module")
def home(own):
    """The user's host has its own VBENCH_HOME (sharing only the built images), as in
    test_own_libvirtd, so the lab's record is never touched by the other host's run."""
    h = separate_home("vbench-fleet-home-")
    yield h
    shutil.rmtree(h, ignore_errors=True)


def _when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


def test_fleet_over_the_lab_and_a_users_libvirtd(own, home, tmp_path, no_leftovers):
    from vbench.results import rundir as store

    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(json.dumps({"hosts": [
        {"name": "lab"},
        {"name": "own-libvirtd", "connect": own.uri, "netns": own.netns,
         "env": {**SUBNETS, "VBENCH_HOME": str(home)}}]}))
    fleet = tmp_path / "fleet"
    t0 = time.monotonic()
    # tests/data/scenarios/tiny.yaml: virtio-blk against SATA, one short job, no host baseline
    # (smoke-disk's whole code path is covered elsewhere; here the fleet is under test)
    cp = vbench("fleet", "run", "tests/data/scenarios/tiny.yaml", "--hosts", str(hosts), "--out",
                str(fleet), timeout=2400, check=False)
    took = time.monotonic() - t0
    assert cp.returncode == 0, f"stdout:\n{cp.stdout[-4000:]}\nstderr:\n{cp.stderr[-3000:]}"
    out = cp.stdout
    assert "machine 1: lab, own-libvirtd (one after another (same machine))" in out
    assert "[lab] " in out and "[own-libvirtd] " in out  # progress says which host does what

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
    for n, p in runs.items():
        df = store.load_samples(p)
        iops = df[(df.workload == "randread") & (df.metric == "iops")]
        assert set(iops.variant) >= {"virtio-blk", "sata"} and (iops.value > 0).all(), n
    # one machine: the two runs did not overlap in time (by the runs' own records, and the index)
    first, second = sorted(recs.values(), key=lambda r: r.started)
    assert _when(first.finished) <= _when(second.started), (first.finished, second.started)
    a, b = sorted(by.values(), key=lambda h: h["started"])
    assert a["finished"] <= b["started"]

    cp = vbench("fleet", "compare", str(fleet))
    print(f"\nfleet of 2 hosts on one machine in {took:.0f} s\n{cp.stdout}")
    lines = cp.stdout.splitlines()
    head = next(ln for ln in lines if ln.startswith("workload"))
    assert head.split()[-2:] == ["lab", "own-libvirtd"]
    row = next(ln for ln in lines if ln.startswith("randread ") and " IOPS " in ln)
    assert row.count("\u00d7") >= 6 and " - " not in row  # a ratio and interval per host
    html = (fleet / "report" / "index.html").read_text()
    assert "<h3>lab <span" in html and "<h3>own-libvirtd <span" in html
    # vbench's networks in the user's libvirt go again (the fixture removes the daemon anyway)
    down = subprocess.run(own.exec_argv([sys.executable, "-m", "vbench", "lab", "down"]),
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **SUBNETS, "VBENCH_HOME": str(home)})
    assert down.returncode == 0, down.stderr


def test_ctrl_c_stops_the_fleet_and_leaves_no_guest(own, home, tmp_path, no_leftovers):
    """SIGINT to `vbench fleet run` (a terminal's Ctrl-C) while the first host's guest boots: that
    host's run is interrupted and cleans up, the second host never starts, the index says so."""
    import libvirt

    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(json.dumps([{"name": "lab"}, {
        "name": "own-libvirtd", "connect": own.uri, "netns": own.netns,
        "env": {**SUBNETS, "VBENCH_HOME": str(home)}}]))
    fleet = tmp_path / "fleet"
    p = subprocess.Popen([sys.executable, "-m", "vbench", "fleet", "run",
                          "scenarios/smoke-disk.yaml", "--hosts", str(hosts), "--out", str(fleet)],
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
    try:
        assert conn.listAllDomains() == []
    finally:
        conn.close()
