"""The byte channel for real: a virtio-serial port against a 16550 UART on a UNIX socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import vbench

pytestmark = pytest.mark.integration

SMOKE = """
name: smoke-console
device: console
repetitions: 1
guest: {vcpus: 2, memory_mib: 1024, machine: pc}
variants:
  - {name: virtio-serial, console: {model: virtio}}
  - {name: serial-16550, console: {model: "16550"}}
workloads:
  - name: stream
    bytestream: {g2h_bytes: 131072, h2g_bytes: 8192, pings: 20, timeout_s: 60}
"""


def test_virtio_serial_and_16550_bind_and_carry_bytes(no_leftovers, tmp_path):
    scn = tmp_path / "smoke-console.yaml"
    scn.write_text(SMOKE)
    cp = vbench("run", str(scn), "--results", str(tmp_path / "r"), "--no-report", timeout=1200)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete", meta["failures"]
    v, u = meta["variants"]["virtio-serial"], meta["variants"]["serial-16550"]
    assert v["drivers"]["console"]["found"] == "virtio_console" and v["drivers"]["console"]["ok"]
    assert u["drivers"]["console"]["ok"] and u["drivers"]["console"]["detail"] == "/dev/ttyS1 uart:16550A"
    from vbench.results.rundir import load_samples

    df = load_samples(run_dir)
    m = df.groupby(["variant", "metric"]).value.median()
    for var in ("virtio-serial", "serial-16550"):
        for metric in ("g2h_throughput", "h2g_throughput", "rtt_p50", "rtt_p99"):
            assert m[(var, metric)] > 0, (var, metric)
    assert set(df[df.variant == "serial-16550"].paravirtual) == {False}
    raw = (run_dir / "raw" / "serial-16550" / "stream-r0.txt").read_text()
    assert "guest device /dev/ttyS1" in raw and "\nh2g 8192 " in raw
