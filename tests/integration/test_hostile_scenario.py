"""Issue 10: a hostile host_baseline scenario is refused before anything boots.

Runs the real CLI as root, as a nightly job would run a scenario from the repository. Nothing may
start: no guest, no guest directory, no run directory, no fio on the host; the refusal is one line
with the field path and exit status 3, within seconds.
"""

from __future__ import annotations

import time

import pytest

from .conftest import guest_dirs, vbench

HOSTILE = {
    "exec": "options: {exec_prerun: /tmp/vbench-pwned.sh}",
    "ioengine-exec": "options: {ioengine: exec, program: /bin/sh}",
    "server": "options: {server: 0.0.0.0, daemonize: /tmp/vbench-fio.pid}",
    "alias": "options: {timeout: 100000}",
    "write_iolog": "options: {write_iolog: /etc/vbench-pwned}",
}


def scenario(fio_options: str, extra: str = "") -> str:
    return ("name: hostile\ndevice: disk\nhost_baseline: true\nrepetitions: 1\nsmoke: true\n"
            "guest: {vcpus: 1, memory_mib: 512}\n" + extra +
            "defaults:\n  disk: {size_gib: 0.25}\n"
            "variants:\n  - {name: a, disk: {bus: virtio}}\n"
            "workloads:\n  - name: w\n    fio: {rw: randread, " + fio_options + "}\n")


@pytest.mark.parametrize("opts", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_host_baseline_scenario_refused_before_anything_boots(tmp_path, opts):
    path = tmp_path / "hostile.yaml"
    path.write_text(scenario(opts))
    before = guest_dirs()
    t0 = time.monotonic()
    cp = vbench("run", str(path), "--results", str(tmp_path / "results"), "--reports",
                str(tmp_path / "reports"), check=False, timeout=120)
    took = time.monotonic() - t0
    assert cp.returncode == 3, cp.stderr
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and "workloads[0].fio.options" in lines[0], cp.stderr
    assert took < 30, f"refusal took {took:.1f} s: something started"
    assert "lab" not in cp.stdout and "accelerator" not in cp.stdout  # the lab was not touched
    assert not (tmp_path / "results").exists()
    assert guest_dirs() == before
    assert not any(p.exists() for p in (tmp_path / "vbench-pwned.sh",))


def test_scenario_over_budget_refused_before_anything_boots(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(scenario("runtime: 3600, ramp_time: 600", extra="").replace(
        "repetitions: 1", "repetitions: 100"))
    t0 = time.monotonic()
    cp = vbench("run", str(path), "--results", str(tmp_path / "results"), check=False, timeout=120)
    assert cp.returncode == 3, cp.stderr
    assert "--max-hours" in cp.stderr and time.monotonic() - t0 < 30
    assert not (tmp_path / "results").exists()


def test_scenario_image_path_refused_before_anything_boots(tmp_path):
    path = tmp_path / "img.yaml"
    path.write_text(scenario("options: {}").replace("guest: {vcpus: 1, memory_mib: 512}",
                                                    "guest: {vcpus: 1, memory_mib: 512, "
                                                    "image: ../../tmp/x}"))
    cp = vbench("run", str(path), "--results", str(tmp_path / "results"), check=False, timeout=120)
    assert cp.returncode == 3 and "guest.image" in cp.stderr, cp.stderr
    assert not (tmp_path / "results").exists()
