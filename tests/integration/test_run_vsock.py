"""The socket byte stream for real (workload sockstream): TCP over virtio-net to a guest runs on any
host with the lab (the host end in the lab's namespace, socat in the guest); virtio-vsock against
it needs /dev/vhost-vsock on the host and is skipped without it (the nested lab has it).
Written 2026-12-05 without a run: the first run proves it (socat's options in the guest, the CID
from the live XML, the host end in the namespace)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import vbench

pytestmark = pytest.mark.integration

SMOKE = """
name: smoke-vsock
device: vsock
repetitions: 1
smoke: true
guest: {vcpus: 2, memory_mib: 1024, machine: pc}
defaults: {nic: {model: virtio}}
variants:
VARIANTS
workloads:
  - name: stream
    sockstream: {g2h_bytes: 4194304, h2g_bytes: 4194304, pings: 20, timeout_s: 60}
"""
TCP = "  - {name: tcp-virtio-net, vsock: {model: none}}"
VSOCK = "  - {name: vsock, vsock: {model: virtio}}"


def _run(tmp_path: Path, variants: list[str]) -> tuple[dict, Path]:
    scn = tmp_path / "smoke-vsock.yaml"
    scn.write_text(SMOKE.replace("VARIANTS", "\n".join(variants)))
    cp = vbench("run", str(scn), "--results", str(tmp_path / "r"), "--no-report", timeout=1200)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete", meta["failures"]
    return meta, run_dir


def _medians(run_dir: Path):
    from vbench.results.rundir import load_samples

    return load_samples(run_dir).groupby(["variant", "metric"]).value.median()


def test_tcp_over_virtio_net_carries_the_byte_stream(no_leftovers, tmp_path):
    _meta, run_dir = _run(tmp_path, [TCP])
    m = _medians(run_dir)
    for metric in ("g2h_throughput", "h2g_throughput", "rtt_p50", "rtt_p99"):
        assert m[("tcp-virtio-net", metric)] > 0, metric
    raw = (run_dir / "raw" / "tcp-virtio-net" / "stream-r0.txt").read_text()
    assert raw.startswith("transport tcp ") and "\nh2g 4194304 " in raw


@pytest.mark.skipif(not os.path.exists("/dev/vhost-vsock"),
                    reason="needs /dev/vhost-vsock (modprobe vhost_vsock), e.g. the nested lab")
def test_vsock_binds_and_carries_the_same_metrics_as_tcp(no_leftovers, tmp_path):
    meta, run_dir = _run(tmp_path, [VSOCK, TCP])
    drv = meta["variants"]["vsock"]["drivers"]["vsock"]
    assert drv["found"] == "vmw_vsock_virtio_transport" and drv["ok"]
    m = _medians(run_dir)
    for var in ("vsock", "tcp-virtio-net"):
        for metric in ("g2h_throughput", "h2g_throughput", "rtt_p50", "rtt_p99"):
            assert m[(var, metric)] > 0, (var, metric)
    raw = (run_dir / "raw" / "vsock" / "stream-r0.txt").read_text()
    assert raw.startswith("transport vsock ")
