"""Real faults injected into real guests: the run ends or goes on as it should, nothing of
vbench's is left running, and every sample measured before a fault is still in the results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, guest_dirs, tagged_domains, vbench

pytestmark = pytest.mark.integration
SCEN = ROOT / "tests" / "data" / "scenarios"


def _meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _samples(run_dir: Path):
    from vbench.results.rundir import load_samples

    return load_samples(run_dir)


def _run_dir_from(out: str) -> Path:
    for line in out.splitlines():
        if line.startswith("results: "):
            return Path(line.split("results: ", 1)[1])
    raise AssertionError(f"no results line in output:\n{out}")


def test_run_survives_guest_faults(no_leftovers, tmp_path):
    faults = ("stop-workload@hung@1,kill-sshd@nosshd@1,panic@panics@1,destroy@destroyed@1,"
              "no-lease@nolease@*")
    cp = vbench("run", str(SCEN / "faults.yaml"), "--results", str(tmp_path), "--no-report",
                check=False, timeout=1200, env={"VBENCH_FAULTS": faults})
    assert cp.returncode == 11, cp.stderr  # finished, with failures recorded
    assert "Traceback" not in cp.stderr
    run_dir = _run_dir_from(cp.stdout)
    meta = _meta(run_dir)
    assert meta["status"] == "incomplete"
    fails = {(f["variant"], f["repetition"]): f for f in meta["failures"]}
    # never got a lease: reported with the console tail, the other variants still ran
    nl = fails[("nolease", None)]
    assert "no DHCP lease" in nl["error"] and nl["console_tail"]
    # a stopped fio ends that repetition as failed, with the reason
    assert "hung or stopped" in fails[("hung", 1)]["error"]
    # sshd killed: the failure is recorded (sshd may be restarted by systemd; either way it goes on)
    assert ("nosshd", 1) in fails
    # panic and destroy from outside: detected as a guest that is gone, console tail kept
    assert ("no longer running" in fails[("panics", 1)]["error"]
            or "kernel panicked" in fails[("panics", 1)]["error"])
    assert fails[("panics", 1)]["console_tail"]
    assert "no longer running" in fails[("destroyed", 1)]["error"]
    assert "reason=destroyed: a libvirt client destroyed it" in fails[("destroyed", 1)]["error"]
    assert (run_dir / "raw" / "panics" / "console.log").exists()
    # Nothing lost, nothing silently missing: every planned unit has its samples or a recorded
    # failure, never both and never neither; and the units measured before the faults are kept.
    df = _samples(run_dir)
    iops = df[df.metric == "iops"]
    measured = {(v, int(r)) for v, r in zip(iops.variant, iops.repetition)}
    failed = {(f["variant"], f["repetition"]) for f in meta["failures"] if f["repetition"] is not None}
    for v in ("hung", "nosshd", "panics", "destroyed", "nolease"):
        for r in (0, 1):
            assert ((v, r) in measured) != ((v, r) in failed), (v, r, measured, failed)
    before = {(v, 0) for v in ("hung", "nosshd", "panics", "destroyed")} & measured
    assert len(before) >= 3, f"too few repetitions measured before the faults: {before}"


def test_boot_hang_is_retried_and_explained(no_leftovers, tmp_path):
    """A boot that hangs (the initramfs stops in its shell: the kernel booted, userspace never
    starts) is given up when its console stops growing, explained, and retried once with a fresh
    guest; a variant whose every boot hangs is recorded as failed with the stage and console."""
    t0 = time.monotonic()
    cp = vbench("run", str(SCEN / "boot-hang.yaml"), "--results", str(tmp_path), "--no-report",
                check=False, timeout=900,
                env={"VBENCH_FAULTS": "boot-hang@retried@*,boot-hang-always@stuck@*"})
    assert cp.returncode == 11, cp.stdout[-3000:] + cp.stderr[-2000:]  # finished; "stuck" failed
    assert "Traceback" not in cp.stderr
    run_dir = _run_dir_from(cp.stdout)
    meta = _meta(run_dir)
    retries = {r["variant"]: r for r in meta["retries"]}
    assert set(retries) == {"retried", "stuck"}, meta["retries"]
    for r in retries.values():
        assert r["attempt"] == 1 and r["boot_stage"] == "kernel", r
        assert "hung while booting" in r["error"] and "userspace did not start" in r["error"], r
        assert r["console_tail"].strip() and (run_dir / r["console"]).stat().st_size > 0
    assert retries["retried"]["outcome"] == "booted"
    assert retries["stuck"]["outcome"].startswith("failed as well")
    # the retried variant's unit completed on its second guest
    df = _samples(run_dir)
    assert set(df[df.metric == "iops"].variant) == {"retried"}
    assert (run_dir / "raw" / "retried" / "console.retry1.log").exists()
    # the stuck one: one failed boot, with where it stopped, both attempts' reasons and its console
    boot = [f for f in meta["failures"] if f["variant"] == "stuck" and f["workload"] == "*"]
    assert len(boot) == 1 and boot[0]["boot_stage"] == "kernel", meta["failures"]
    assert "userspace did not start" in boot[0]["error"] and "attempt 1:" in boot[0]["error"]
    assert boot[0]["console_tail"].strip()
    assert not [f for f in meta["failures"] if f["variant"] == "retried"]
    print(f"boot-hang run took {time.monotonic() - t0:.0f} s")


def _default_sigint() -> None:
    # A CI job started in the background of a non-interactive shell runs with SIGINT ignored, and
    # an ignored signal stays ignored across exec: the child must get Ctrl-C as a user's would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen_run(scenario: Path, results: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vbench", "run", str(scenario), "--results",
                             str(results), "--no-report"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
                            preexec_fn=_default_sigint)


def _read_until(proc: subprocess.Popen, needle: str, timeout: float = 600) -> str:
    out = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if needle in line:
            return "".join(out)
    proc.kill()
    raise AssertionError(f"never saw {needle!r}:\n{''.join(out)}")


def test_sigint_keeps_samples_and_resume_completes(no_leftovers, tmp_path):
    proc = _popen_run(SCEN / "tiny.yaml", tmp_path)
    out = _read_until(proc, "[  3/6]")
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130
    run_dir = _run_dir_from(out)
    meta = _meta(run_dir)
    assert meta["status"] == "incomplete" and meta["missing_units"] >= 1
    before = _samples(run_dir)
    assert before[before.metric == "iops"].shape[0] >= 3  # the finished units are kept
    assert tagged_domains() == [] and guest_dirs() == []
    assert not list(run_dir.rglob("*.tmp"))
    cp = vbench("run", "--resume", str(run_dir), "--no-report", timeout=900)
    assert "run: " in cp.stdout
    after = _samples(run_dir)
    assert _meta(run_dir)["status"] == "complete"
    assert after[after.metric == "iops"].shape[0] == 6  # 2 variants x 3 repetitions
    # the samples measured before the interruption are unchanged
    key = ["variant", "workload", "repetition", "metric"]
    merged = before.merge(after, on=key, suffixes=("_b", "_a"))
    assert len(merged) == len(before) and (merged.value_b == merged.value_a).all()


def test_sigkill_then_gc_removes_every_leftover(lab_ready, tmp_path):
    proc = _popen_run(SCEN / "tiny.yaml", tmp_path)
    _read_until(proc, "(verified)")
    proc.kill()
    proc.wait(30)
    left = tagged_domains()
    assert left, "the killed run should have left its guest behind"
    cp = vbench("lab", "gc")
    assert "destroyed orphaned guest" in cp.stdout
    assert tagged_domains() == [] and guest_dirs() == []


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "vbench-test-small", str(mnt)],
                   check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_results_filesystem_is_a_clear_error(no_leftovers, small_fs):
    cp = vbench("run", str(SCEN / "tiny.yaml"), "--results", str(small_fs), "--no-report",
                check=False, timeout=900)
    assert cp.returncode == 10, cp.stdout + cp.stderr
    err = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("vbench: error: cannot write") and "free space" in err[0]
    assert not list(small_fs.rglob("*.tmp")), "a temporary file was left behind"
    for f in small_fs.rglob("*.json"):
        json.loads(f.read_text())  # whatever was written is whole


def test_read_only_results_directory_is_a_clear_error(lab_ready, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "vbench-test-ro", str(ro)], check=True)
    try:
        cp = vbench("run", str(SCEN / "tiny.yaml"), "--results", str(ro), "--no-report",
                    check=False, timeout=300)
    finally:
        subprocess.run(["umount", str(ro)], check=False)
    assert cp.returncode == 10
    err = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "Read-only file system" in err[0], cp.stderr
    assert tagged_domains() == []
