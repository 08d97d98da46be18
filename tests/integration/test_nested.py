"""The nested lab (vbench.run.nested): KVM one level down, in a hypervisor guest that runs under TCG
with an emulated EPYC+svm CPU. One L1 boot for the module (`vbench lab up --nested`), shared by
`lab status`, smoke-disk, a Ctrl-C of a second run as soon as its first inner guest starts, and
smoke-net; then `vbench lab down --nested`. Measured 2026-12-05 (2 cores, shared): the module in
7 min 11 s (L1 up with its inner lab 60 s, smoke-disk 183 s, Ctrl-C 45 s, smoke-net 139 s); under
heavy load each step took about twice as long (inner guests booted in 106-191 s instead of 52-77).
Opt-in for now (VBENCH_NESTED_TESTS=1): 7-15 minutes on this machine kind would take the suite
past its time target, and it has not yet run under this conftest beside the other tests; skipped
too where the hypervisor image is not built (`vbench image build hypervisor`, about 4 min)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, tagged_domains, vbench

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.environ.get("VBENCH_NESTED_TESTS") != "1",
                                 reason="opt-in: VBENCH_NESTED_TESTS=1 (7-15 min under TCG)")]


def _default_sigint() -> None:  # a background CI shell ignores SIGINT; a user's Ctrl-C does not
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def nested_lab(lab_ready):
    from vbench.host import images
    from vbench.run import nested

    if images.find("hypervisor") is None:
        pytest.skip("the hypervisor guest image is not built (vbench image build hypervisor)")
    was_up = nested.load_state() is not None
    before = set(tagged_domains())
    vbench("lab", "up", "--nested", timeout=1200)
    yield before
    if not was_up:
        vbench("lab", "down", "--nested", timeout=300)
        assert nested.load_state() is None
        assert set(tagged_domains()) - before == set(), "the hypervisor guest was left running"


@pytest.fixture(scope="module")
def nested_run(nested_lab, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    reports = tmp_path_factory.mktemp("reports")
    cp = vbench("run", str(ROOT / "scenarios/smoke-disk.yaml"), "--nested", "--results",
                str(results), "--reports", str(reports), timeout=2400)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    return run_dir, cp.stdout, reports


def _inner(command: str) -> str:
    """A command run in the hypervisor guest (over the nested lab's recorded session)."""
    from vbench.run import nested

    ssh = nested._reconnect(nested.load_state())
    try:
        return ssh.run(command, timeout=60, check=False).stdout
    finally:
        ssh.close()


def test_status_shows_both_accelerators(nested_lab):
    out = vbench("lab", "status", timeout=120).stdout
    assert "nested lab" in out and "SSH answers" in out
    assert "inside KVM" in out


def test_inner_guests_ran_under_kvm_and_both_levels_are_recorded(nested_run):
    run_dir, out, _ = nested_run
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["failures"] == []
    env = meta["environment"]
    assert env["accelerator"] == "kvm" and env["kvm_module"] in ("kvm_amd", "kvm_intel")
    for name in ("virtio-blk", "sata"):
        v = meta["variants"][name]
        assert v["domain_xml"].startswith("<domain type='kvm'>")
        assert v["guest_virt"] == "kvm"  # the guest's own view, not only what was asked for
        assert v["drivers"]["disk"]["ok"]
    n = env["nested"]
    assert n["outer_accelerator"] in ("tcg", "kvm") and n["outer_host"]["qemu_version"]
    assert n["inner_domain_types"] == ["kvm"] and n["inner_guest_virt"]["sata"] == "kvm"
    assert "L1 | " in out  # the inner run's progress lines came through


def test_exits_per_io_are_recorded_for_kvm_units(nested_run):
    """Under KVM every fio unit also stores its VM exits per I/O (debugfs of L1's kernel)."""
    from vbench.core.metrics import KVM_EXIT_METRICS
    from vbench.results.rundir import load_samples

    run_dir, _, _ = nested_run
    df = load_samples(run_dir)
    exits = df[df.metric == "exits_per_op"]
    assert set(exits.variant) == {"virtio-blk", "sata"}, sorted(set(df.metric))
    assert (exits.value > 0).all()
    by = df[df.metric.isin(KVM_EXIT_METRICS)].groupby(["variant", "metric"]).value.median()
    print("\nexits per I/O (nested KVM, smoke-disk):\n" + by.to_string())


def test_report_says_nested(nested_run):
    run_dir, _, reports = nested_run
    html = (reports / run_dir.name / "index.html").read_text()
    assert "nested in" in html


def test_ctrl_c_leaves_no_domain_at_either_level(nested_run, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "vbench", "run",
                             str(ROOT / "scenarios/smoke-disk.yaml"), "--nested", "--results",
                             str(tmp_path), "--no-report"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
                            preexec_fn=_default_sigint)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "started (kvm)" in line:
            break
    else:
        raise AssertionError("no inner guest started:\n" + "".join(seen))
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "results so far copied" in rest
    assert "vbench-" not in _inner("ip netns exec vbench virsh -c qemu:///system list --name")
    assert _inner("ls /var/lib/vbench/guests 2>/dev/null").strip() == ""
    run = next(tmp_path.iterdir())
    assert json.loads((run / "run.json").read_text())["status"] == "incomplete"


def test_smoke_net_under_nested_kvm(nested_lab, tmp_path):
    """The NIC path one level down (about 5 min): host-side iperf3 and ping peers in the inner
    lab's namespace, guests under KVM."""
    cp = vbench("run", str(ROOT / "scenarios/smoke-net.yaml"), "--nested", "--results",
                str(tmp_path), "--no-report", timeout=1800)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["failures"] == []
    for name, driver in (("virtio-net", "virtio_net"), ("e1000", "e1000")):
        v = meta["variants"][name]
        assert v["domain_xml"].startswith("<domain type='kvm'>") and v["guest_virt"] == "kvm"
        assert v["drivers"]["nic"]["found"] == driver


NET_VHOST = """
name: smoke-net-vhost
description: net-vhost.yaml's three backends with one short TCP job (nested KVM)
device: nic
repetitions: 1
smoke: true
guest: {vcpus: 2, memory_mib: 1024, machine: pc}
variants:
  - {name: vhost-on, nic: {model: virtio, vhost: true}}
  - {name: vhost-off, nic: {model: virtio, vhost: false}}
  - {name: e1000, nic: {model: e1000}}
reference: vhost-off
workloads:
  - name: tcp-1
    iperf3: {protocol: tcp, parallel: 1, duration: 3, omit: 1}
"""


def _nested_run(tmp_path: Path, name: str, text: str) -> dict:
    scn = tmp_path / name
    scn.write_text(text)
    cp = vbench("run", str(scn), "--nested", "--results", str(tmp_path / "r"), "--no-report",
                timeout=1800)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["failures"] == [], meta["failures"]
    return meta


def test_vhost_is_proven_on_the_host_under_nested_kvm(nested_lab, tmp_path):
    meta = _nested_run(tmp_path, "smoke-net-vhost.yaml", NET_VHOST)
    on = meta["variants"]["vhost-on"]["host_proofs"]["vhost"]
    off = meta["variants"]["vhost-off"]["host_proofs"]["vhost"]
    print(f"\nvhost proofs: on {on}, off {off}")
    assert on["used"] is True and on["ok"] and on["evidence"] != "none"
    assert off["used"] is False and off["ok"]
    for v in meta["variants"].values():
        if not v.get("baseline"):
            assert v["domain_xml"].startswith("<domain type='kvm'>") and v["guest_virt"] == "kvm"


def test_vsock_carries_the_byte_stream_under_nested_kvm(nested_lab, tmp_path):
    from .test_run_vsock import SMOKE, TCP, VSOCK

    meta = _nested_run(tmp_path, "smoke-vsock.yaml", SMOKE.replace("VARIANTS", f"{VSOCK}\n{TCP}"))
    drv = meta["variants"]["vsock"]["drivers"]["vsock"]
    assert drv["found"] == "vmw_vsock_virtio_transport" and drv["ok"]
