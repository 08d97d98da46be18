"""`vbench run --connect qemu+ssh://root@HOST/system` against a second host, end to end.

The second host is simulated: its own network namespace, mount namespace (private
/var/lib/libvirt, /run/libvirt, /etc/libvirt ...) and UTS namespace (its own host name), its own
libvirtd and virtlogd (tests/ownlibvirtd.py) and its own sshd with a fresh host key and one
authorized client key. vbench runs in a second network namespace of the test's, joined to the
host's by a veth pair on 10.239.0.0/30: every packet stays in the two namespaces. vbench reaches
that host only over SSH (its key pinned through VBENCH_KNOWN_HOSTS), libvirt over its ssh
transport, the guests through the host (a jump).

Asserted: the run exits 0 with samples for every variant and the host baseline; the record names
the simulated host (its host name, kernel, QEMU, libvirt, the URI); every domain that appeared
did so on that host's libvirtd, tagged as vbench's, and none is left; the image was uploaded into
the host's private directory (nothing of it on this machine's /var/lib/libvirt); the host
baseline's scratch file was on the host; afterwards only the cached image is left there. Also:
an unknown host key is refused with one line before anything is created.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/
from ownlibvirtd import DomainWatcher, OwnLibvirtd, separate_home, sshd_script  # noqa: E402
from pgcluster import process_running  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOST_ADDR, CLIENT_ADDR = "10.239.0.2", "10.239.0.1"
HOSTNAME = "vbench-second-host"
URI = f"qemu+ssh://root@{HOST_ADDR}/system"
REMOTE_ROOT = "lib/vbench"  # /var/lib/libvirt/vbench on the host = base/lib/vbench here


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def keys():
    d = Path(tempfile.mkdtemp(prefix="vbench-rkeys-"))
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vbench-client", "-f",
        str(d / "id_ed25519"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def second_host(lab_ready, keys):
    """(the host's libvirtd, the client namespace vbench runs in)."""
    if shutil.which("unshare") is None or not Path("/usr/sbin/sshd").exists():
        pytest.skip("needs util-linux unshare and openssh-server")
    pid = os.getpid()
    host_ns, client_ns = f"vbench-rhost-{pid}", f"vbench-rcli-{pid}"
    veth_c, veth_h = f"vrc{pid % 100000}", f"vrh{pid % 100000}"

    def wire_and_sshd(base: Path) -> str:
        _sh("ip", "netns", "add", client_ns)
        _sh("ip", "-n", client_ns, "link", "set", "lo", "up")
        _sh("ip", "-n", client_ns, "link", "add", veth_c, "type", "veth", "peer", "name", veth_h,
            "netns", host_ns)
        _sh("ip", "-n", client_ns, "addr", "add", f"{CLIENT_ADDR}/30", "dev", veth_c)
        _sh("ip", "-n", host_ns, "addr", "add", f"{HOST_ADDR}/30", "dev", veth_h)
        _sh("ip", "-n", client_ns, "link", "set", veth_c, "up")
        _sh("ip", "-n", host_ns, "link", "set", veth_h, "up")
        return sshd_script(base, HOST_ADDR, (keys / "id_ed25519.pub").read_text(), HOSTNAME)

    try:
        lv = OwnLibvirtd.start(host_ns, extra=wire_and_sshd, uts=True)
    except BaseException:
        subprocess.run(["ip", "netns", "delete", client_ns], capture_output=True, timeout=20)
        raise
    host_pub = (lv.base / "ssh_host_ed25519_key.pub").read_text().split()
    (keys / "known_hosts").write_text(f"{HOST_ADDR} {host_pub[0]} {host_pub[1]}\n")
    deadline = time.monotonic() + 20
    while not (lv.base / "sshd.pid").exists():
        assert time.monotonic() < deadline, "the simulated host's sshd did not start"
        time.sleep(0.2)
    yield lv, client_ns
    pids = [lv.pid("sshd"), lv.pid("libvirtd"), lv.pid("virtlogd")]
    lv.stop()
    subprocess.run(["ip", "netns", "delete", client_ns], capture_output=True, timeout=20)
    assert not any(p and process_running(p) for p in pids), "the host's daemons survived"


@pytest.fixture(scope="module")
def home(second_host):
    h = separate_home("vbench-home-")  # the image cache hard-linked: a symlinked one is refused
    yield h
    shutil.rmtree(h, ignore_errors=True)


def _vbench(client_ns: str, home: Path, keys: Path, *args: str, known_hosts: Path | None = None,
            timeout: int = 1500):
    env = {**os.environ, "VBENCH_HOME": str(home), "VBENCH_SSH_KEY": str(keys / "id_ed25519"),
           "VBENCH_KNOWN_HOSTS": str(known_hosts or keys / "known_hosts")}
    return subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-m", "vbench",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env)



def _files(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


def test_unknown_host_key_is_refused(second_host, home, keys, tmp_path):
    lv, client_ns = second_host
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cp = _vbench(client_ns, home, keys, "run", "scenarios/smoke-disk.yaml", "--connect", URI,
                 "--results", str(tmp_path / "results"), "--no-report", known_hosts=empty,
                 timeout=120)
    assert cp.returncode != 0
    err = cp.stderr.strip()
    assert len(err.splitlines()) == 1 and "never accepts an unknown host key" in err, err
    assert _files(lv.base / REMOTE_ROOT) == []


def test_run_on_a_second_host(second_host, home, keys, tmp_path):
    import libvirt

    from vbench.results import rundir as store
    from vbench.host import libvirtd

    lv, client_ns = second_host
    local_libvirt_dir = Path("/var/lib/libvirt/vbench")
    assert not local_libvirt_dir.exists()
    lab_sock = Path("/run/libvirt/libvirt-sock")
    watchers = [DomainWatcher(lv.uri)] + ([DomainWatcher("qemu:///system")] if lab_sock.exists() else [])
    for w in watchers:
        w.start()
    t0 = time.monotonic()
    cp = _vbench(client_ns, home, keys, "run", "scenarios/smoke-disk.yaml", "--connect", URI,
                 "--results", str(tmp_path / "results"), "--no-report")
    took = time.monotonic() - t0
    for w in watchers:
        w.stop_flag.set()
        w.join(10)
    assert cp.returncode == 0, f"stdout:\n{cp.stdout[-3000:]}\nstderr:\n{cp.stderr[-3000:]}"

    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run:", 1)[1].strip())
    rec = store.load_record(run_dir)
    assert rec.status == "complete", rec.failures
    env = rec.environment
    assert env.host == HOSTNAME and env.libvirt_uri == URI
    assert env.host_kernel and env.qemu_version.startswith("QEMU") and env.libvirt_version != "unknown"
    assert env.guest_image and env.guest_image.startswith("/var/lib/libvirt/vbench/images/")

    # domains: on the second host only, all vbench's, none left
    on_host = watchers[0].seen
    assert on_host and all(t and t.get("owner") == "vbench" and t.get("run") == rec.run_id
                           for t in on_host.values()), on_host
    for w in watchers[1:]:
        assert not [n for n, t in w.seen.items() if t and t.get("run") == rec.run_id], w.seen
    conn = libvirt.open(lv.uri)
    try:
        assert libvirtd.tagged_domains(conn) == []
    finally:
        conn.close()

    # samples for every variant, the baseline included; the baseline's file was on the host
    df = store.load_samples(run_dir)
    assert set(df.variant) == {"virtio-blk", "sata", "host"}
    host_raw = "\n".join(p.read_text(errors="replace")
                         for p in (run_dir / "raw" / "host").rglob("*") if p.is_file())
    assert f"/var/lib/libvirt/vbench/guests/vbench-host-{rec.run_id}" in host_raw
    assert not local_libvirt_dir.exists(), "vbench wrote into this machine's /var/lib/libvirt"
    assert not (home / "guests").exists() or _files(home / "guests") == []

    # on the host: only the cached image is left
    root = lv.base / REMOTE_ROOT
    cached = [p.name for p in (root / "images").iterdir()]
    assert len(cached) == 1, cached
    c = f"images/{cached[0]}"
    assert _files(root) == sorted(["guests", "images", c, f"{c}/.complete", f"{c}/base",
                                   f"{c}/initrd", f"{c}/kernel"])

    med = df[(df.workload == "randread-4k-qd32") & (df.metric == "iops")].groupby(
        "variant")["value"].median()
    print(f"\nsecond host: smoke-disk in {took:.0f} s, randread-4k-qd32 IOPS virtio-blk "
          f"{med['virtio-blk']:.0f} / sata {med['sata']:.0f} = "
          f"{med['virtio-blk'] / med['sata']:.2f}x; host {med['host']:.0f}")
    print("\n".join(line for line in cp.stdout.splitlines() if "headline" in line.lower()
                    or "randread" in line))


def test_net_on_a_second_host(second_host, home, keys, tmp_path):
    """smoke-net through the same host: the image is reused, the iperf3 server and the host-side
    ping run on that host (its test-network address exists only there), nothing is left."""
    from vbench.results import rundir as store

    lv, client_ns = second_host
    cp = _vbench(client_ns, home, keys, "run", "scenarios/smoke-net.yaml", "--connect", URI,
                 "--results", str(tmp_path / "results"), "--no-report")
    assert cp.returncode == 0, f"stdout:\n{cp.stdout[-3000:]}\nstderr:\n{cp.stderr[-3000:]}"
    assert "guest image already on 10.239.0.2" in cp.stdout  # uploaded once, by content
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run:", 1)[1].strip())
    assert store.load_record(run_dir).status == "complete"
    df = store.load_samples(run_dir)
    got = {(r.variant, r.workload) for r in df[df.metric.isin(["throughput", "rtt_p50"])].itertuples()}
    for v in ("virtio-net", "e1000"):
        assert {(v, "tcp-1-h2g"), (v, "tcp-1-g2h"), (v, "udp-64b-g2h"), (v, "rtt-h2g"),
                (v, "rtt-g2h")} <= got, got
    left = subprocess.run(["pgrep", "-f", "vbench-peer"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "a host-side peer outlived the run"
    assert _files(lv.base / REMOTE_ROOT / "guests") == []


def test_gc_and_down_on_the_second_host(second_host, home, keys):
    """`lab gc --connect` removes on that host only what a killed vbench of this machine left
    (a planted guest directory whose owner is dead); a directory another machine's vbench made
    stays; `lab down` removes vbench's networks there and keeps the cached image."""
    import json
    import platform

    import libvirt

    lv, client_ns = second_host
    cp = _vbench(client_ns, home, keys, "lab", "up", "--connect", URI, timeout=300)
    assert cp.returncode == 0, cp.stderr  # (after the runs above: nothing to add)
    guests = lv.base / REMOTE_ROOT / "guests"
    guests.mkdir(parents=True, exist_ok=True)
    cached = _files(lv.base / REMOTE_ROOT / "images")  # the runs' image, when they ran before
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name, client in (("vbench-killed-0-virtio-blk", platform.node()),
                         ("vbench-elsewhere-0-sata", "another-machine")):
        (guests / name).mkdir()
        (guests / name / "overlay.qcow2").write_bytes(b"x")
        (guests / name / "owner.json").write_text(json.dumps(
            {"client": client, "pid": dead.pid, "starttime": 1, "what": "vbench"}))
    cp = _vbench(client_ns, home, keys, "lab", "gc", "--connect", URI, timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert _files(guests) == ["vbench-elsewhere-0-sata", "vbench-elsewhere-0-sata/overlay.qcow2",
                              "vbench-elsewhere-0-sata/owner.json"], cp.stdout
    assert "removed leftover guest files 10.239.0.2:" in cp.stdout
    conn = libvirt.open(lv.uri)
    try:
        assert {"vbench-mgmt", "vbench-test"} <= {n.name() for n in conn.listAllNetworks()}
        cp = _vbench(client_ns, home, keys, "lab", "down", timeout=300)
        assert cp.returncode == 0, cp.stderr
        assert not {"vbench-mgmt", "vbench-test"} & {n.name() for n in conn.listAllNetworks()}
    finally:
        conn.close()
    assert _files(lv.base / REMOTE_ROOT / "images") == cached  # the cache stays
