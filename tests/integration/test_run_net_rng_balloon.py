"""Network, entropy and balloon scenarios on real guests, with short settings."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from .conftest import ROOT, guest_dirs, tagged_domains, vbench

pytestmark = pytest.mark.integration


def _run(scenario: str, tmp: Path, *extra: str) -> tuple[Path, str]:
    cp = vbench("run", str(ROOT / "scenarios" / scenario), "--results", str(tmp / "results"),
                "--reports", str(tmp / "reports"), *extra, timeout=1800)
    return Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1]), cp.stdout


def _medians(run_dir: Path) -> dict:
    from vbench.results.rundir import load_samples

    df = load_samples(run_dir)
    return df.groupby(["variant", "workload", "metric"]).value.median().to_dict()


def test_net_smoke(no_leftovers, tmp_path):
    from vbench.core import paths

    peers = paths.lab_dir() / "peers"
    peers_before = set(peers.glob("*.json")) if peers.is_dir() else set()
    run_dir, out = _run("smoke-net.yaml", tmp_path)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete", meta["failures"]
    assert meta["variants"]["virtio-net"]["drivers"]["nic"]["found"] == "virtio_net"
    assert meta["variants"]["e1000"]["drivers"]["nic"]["found"] == "e1000"
    m = _medians(run_dir)
    for v in ("virtio-net", "e1000"):
        for d in ("h2g", "g2h"):
            assert m[(v, f"tcp-1-{d}", "throughput")] > 10  # Mbit/s
            assert m[(v, f"tcp-1-{d}", "host_cpu_per_gbit")] > 0  # QEMU's CPU, measured window
            assert m[(v, f"rtt-{d}", "rtt_p50")] > 0
        assert m[(v, "udp-64b-g2h", "pps")] > 0
        assert 0 <= m[(v, "udp-64b-g2h", "loss")] <= 100
    # All probe traffic stayed in the lab's test network: iperf3 says where it connected.
    lab_net = ipaddress.ip_network("10.254.1.0/24")
    for raw in (run_dir / "raw").rglob("tcp-1-*.txt"):
        for block in raw.read_text().split("### ")[1:]:
            _name, placed, body = block.split("\n", 2)
            # split placement (the default): the NIC's interrupts and iperf3 apart, read back
            assert placed.startswith("# placement: ") and placed.endswith(
                "on vCPU 0, probe on vCPU 1"), placed
            doc = json.loads(body)
            for c in doc["start"]["connected"]:
                assert ipaddress.ip_address(c["remote_host"]) in lab_net
                assert ipaddress.ip_address(c["local_host"]) in lab_net
    # host-side peers were stopped and their records removed
    assert set(peers.glob("*.json")) - peers_before == set()


def test_rng_virtio_against_none(no_leftovers, tmp_path):
    run_dir, _ = _run("rng.yaml", tmp_path, "--repetitions", "1")
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["variants"]["virtio-rng"]["drivers"]["rng"]["found"].startswith("virtio_rng")
    assert meta["variants"]["no-rng"]["drivers"]["rng"]["found"] in ("none", "absent")
    m = _medians(run_dir)
    assert m[("virtio-rng", "entropy", "hwrng_read_rate")] > 10_000  # bytes/s
    assert ("no-rng", "entropy", "hwrng_read_rate") not in m         # nothing to read without it
    for v in ("virtio-rng", "no-rng"):
        assert m[(v, "entropy", "crng_init_time")] > 0
        assert m[(v, "entropy", "ssh_ready_time")] > 0


def test_balloon_shrinks_and_grows_back(no_leftovers, tmp_path):
    run_dir, _ = _run("balloon.yaml", tmp_path, "--repetitions", "1")
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete", meta["failures"]
    m = _medians(run_dir)
    v = "virtio-balloon"
    assert m[(v, "shrink-512", "balloon_supported")] == 1
    before, shrunk = m[(v, "shrink-512", "guest_mem_before")], m[(v, "shrink-512", "guest_mem_shrunk")]
    assert shrunk < before - 300                       # MiB: the guest saw its memory shrink
    assert m[(v, "shrink-512", "guest_mem_after")] > before - 50   # ... and grow back
    assert m[(v, "shrink-512", "host_mem_returned")] > 100         # the host got pages back
    assert m[(v, "shrink-512", "balloon_inflate_time")] > 0
    # Without a balloon, libvirt's refusal is a recorded result, not a crash.
    assert m[("no-balloon", "shrink-512", "balloon_supported")] == 0
