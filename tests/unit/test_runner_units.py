"""The runner's plan (interleaved A/B order) and the fio executor against a fake guest.

The fake guest sits at the SSH seam (habit 8): it has ``.name``, ``.ssh.run(cmd, timeout)``
returning a real :class:`vbench.core.metrics.CommandResult` with captured fio output, ``.qemu_pid()``
and ``.check_alive()``. Everything between the executor and that seam is the real code.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
from pathlib import Path

import pytest

from vbench.run.cpuwindow import CpuWindow
from vbench.run import executors, runner
from vbench.core import procs
from vbench.core.errors import GuestError, ProbeError, RemoteCommandError, UserError
from vbench.run.executors import Target
from vbench.core.metrics import CommandResult
from vbench.scenario.schema import load_scenario_text

DATA = Path(__file__).resolve().parents[1] / "data"
RANDREAD = (DATA / "fio-randread-4k-qd32-sata-tcg.json").read_text()
FIO_ERROR = (DATA / "fio-error-nonexistent-device.txt").read_text()
RANDREAD_IOPS = json.loads(RANDREAD)["jobs"][0]["read"]["iops"]

SCENARIO = """\
name: unit
device: disk
repetitions: 3
order: {order}
host_baseline: {baseline}
fio_defaults: {{runtime: {runtime}, ramp_time: {ramp}}}
variants:
  - {{name: A, disk: {{bus: virtio}}}}
  - {{name: B, disk: {{bus: scsi}}}}
  - {{name: C, disk: {{bus: sata}}}}
workloads:
  - {{name: randread-4k-qd32, fio: {{rw: randread, bs: 4k, iodepth: 32}}}}
  - {{name: seqwrite-1m, fio: {{rw: write, bs: 1m, iodepth: 8}}}}
"""


def scenario(order="interleaved", baseline="false", runtime=5, ramp=2):
    return load_scenario_text(SCENARIO.format(order=order, baseline=baseline, runtime=runtime,
                                              ramp=ramp))


# ---- plan ---------------------------------------------------------------------------------------

def variant_rounds(units, reps):
    """Per repetition, the order in which variants are visited (each once)."""
    rounds = []
    for r in range(reps):
        seq = [u.variant for u in units if u.repetition == r]
        rounds.append([v for i, v in enumerate(seq) if i == 0 or seq[i - 1] != v])
    return rounds


def test_plan_interleaves_by_rotation():
    scn = scenario()
    units = runner.plan(scn, 3)
    assert variant_rounds(units, 3) == [["A", "B", "C"], ["B", "C", "A"], ["C", "A", "B"]]
    # Workloads run inside each variant visit, in scenario order.
    assert [(u.repetition, u.variant, u.workload) for u in units[:4]] == [
        (0, "A", "randread-4k-qd32"), (0, "A", "seqwrite-1m"),
        (0, "B", "randread-4k-qd32"), (0, "B", "seqwrite-1m")]
    assert len(units) == 3 * 3 * 2
    assert [u.repetition for u in units] == sorted(u.repetition for u in units)


def test_plan_wraps_after_a_full_rotation():
    units = runner.plan(scenario(), 4)
    assert variant_rounds(units, 4)[3] == ["A", "B", "C"]


def test_plan_with_host_baseline_rotates_host_too():
    units = runner.plan(scenario(baseline="true"), 4)
    assert variant_rounds(units, 4) == [["A", "B", "C", "host"], ["B", "C", "host", "A"],
                                        ["C", "host", "A", "B"], ["host", "A", "B", "C"]]


def test_plan_sequential_keeps_order():
    units = runner.plan(scenario(order="sequential"), 3)
    assert variant_rounds(units, 3) == [["A", "B", "C"]] * 3


def test_plan_units_are_unique_and_complete():
    scn = scenario(baseline="true")
    units = runner.plan(scn, 3)
    keys = [u.key for u in units]
    assert len(set(keys)) == len(keys) == 3 * 4 * 2
    assert "A+seqwrite-1m+r2" in keys and "host+randread-4k-qd32+r0" in keys


# ---- the fake guest at the SSH seam -------------------------------------------------------------

class FakeSsh:
    def __init__(self, answer) -> None:
        self.answer = answer  # callable(cmd, timeout) -> CommandResult
        self.calls: list[tuple[str, float]] = []

    def run(self, cmd, timeout=60.0, check=False):
        self.calls.append((cmd, timeout))
        return self.answer(cmd, timeout)


class FakeGuest:
    def __init__(self, answer, alive=True) -> None:
        self.name = "vbench-unit-2-C"
        self.ssh = FakeSsh(answer)
        self.alive = alive

    def qemu_pid(self):
        return os.getpid()

    def check_alive(self):
        if not self.alive:
            raise GuestError(f"guest {self.name} is no longer running", "[ 1.0] Kernel panic")


def sata_target(guest) -> Target:
    return Target("C", guest, {"disks": [{"dev": "sda", "chain": ["sd", "ahci"]}]})


def fio_ok(cmd, timeout):
    return CommandResult(cmd, 0, RANDREAD, "", 7.2)


def run_first_workload(guest, **kw):
    scn = scenario(**kw)
    return executors.execute(scn, scn.workloads[0], sata_target(guest))


def test_run_fio_command_and_samples():
    g = FakeGuest(fio_ok)
    samples, raw = run_first_workload(g)
    assert raw == RANDREAD
    assert len(g.ssh.calls) == 1
    cmd, ssh_timeout = g.ssh.calls[0]
    argv = shlex.split(cmd)
    assert "--filename=/dev/sda" in argv
    assert "--direct=1" in argv and "--ioengine=libaio" in argv
    assert "--output-format=json" in argv
    assert "--rw=randread" in argv and "--bs=4k" in argv and "--iodepth=32" in argv
    assert "--runtime=5" in argv and "--ramp_time=2" in argv
    # Bounded twice: `timeout` in the guest, then the SSH timeout a little later.
    assert argv[0] == "timeout"
    limit = float(argv[argv.index("fio") - 1])
    assert 5 + 2 < limit < ssh_timeout <= 5 + 2 + 600
    by = {s.metric: s for s in samples}
    assert by["iops"].value == RANDREAD_IOPS and by["iops"].unit == "IO/s"
    assert {s.workload for s in samples} == {"randread-4k-qd32"}
    assert {"bw", "clat_p99", "guest_cpu_sys"} <= set(by)


def test_run_fio_host_cpu_per_io_from_qemu_pid(monkeypatch):
    """With a 1 s window, the CPU time of the 'QEMU' pid is sampled at its start and end."""
    sampled = threading.Event()
    calls = []
    real = procs.cpu_seconds

    def counting(pid):
        calls.append(pid)
        if len(calls) >= 2:
            sampled.set()
        return real(pid)

    monkeypatch.setattr(procs, "cpu_seconds", counting)

    def slow_fio(cmd, timeout):
        assert sampled.wait(5), "the CPU window never closed"
        threading.Event().wait(0.05)  # let the timer thread store the value it just read
        return CommandResult(cmd, 0, RANDREAD, "", 1.0)

    samples, _ = run_first_workload(FakeGuest(slow_fio), runtime=1, ramp=0)
    assert calls == [os.getpid(), os.getpid()]
    per_io = [s for s in samples if s.metric == "host_cpu_per_io"]
    assert len(per_io) == 1 and per_io[0].value >= 0 and per_io[0].unit == "us"


def test_cpu_window_measures_between_its_timers():
    with CpuWindow(os.getpid(), 0.0, 0.05) as w:
        threading.Event().wait(0.15)
    assert len(w.values) == 2 and w.rate() is not None and w.rate() >= 0
    with CpuWindow(os.getpid(), 5.0, 5.0) as w2:
        pass  # ended before the window opened: no number rather than a wrong one
    assert w2.rate() is None


def test_cpu_window_samples_inside_the_tools_measured_window():
    """iperf3 -O 2 -t 8 measures seconds 2..10 and then exits: both samples must fall inside,
    or the closing one would come after the command returned and be lost."""
    w = CpuWindow(None, 2.0, 8.0)
    first, last = (t.interval for t in w._timers)
    assert 2.0 < first < last < 10.0
    assert abs(w.length - (last - first)) < 1e-9


def test_run_fio_failure_shows_command_and_last_output():
    head, _, json_part = FIO_ERROR.partition("{")
    err_lines = head.strip()  # fio's own error lines go to stderr, the JSON to stdout

    def failing(cmd, timeout):
        return CommandResult(cmd, 1, "{" + json_part.replace("exit=1", ""), err_lines + "\n", 0.4)

    g = FakeGuest(failing)
    with pytest.raises(RemoteCommandError) as exc:
        run_first_workload(g)
    e = exc.value
    assert isinstance(e, UserError)
    msg = str(e)
    assert "exit 1" in msg
    assert g.ssh.calls[0][0] in msg  # the exact command
    assert "you need to specify size=" in msg and "err=22" in msg
    assert "\n" not in msg
    assert e.result.exit_status == 1 and e.result.command == g.ssh.calls[0][0]


@pytest.mark.parametrize("result", [
    dict(exit_status=-1, timed_out=True),   # the SSH bound fired
    dict(exit_status=124, timed_out=False),  # `timeout` in the guest fired
], ids=["ssh-timeout", "guest-timeout"])
def test_run_fio_timeout_says_it_did_not_finish(result):
    def hung(cmd, timeout):
        return CommandResult(cmd, result["exit_status"], "", "", timeout,
                             timed_out=result["timed_out"])

    g = FakeGuest(hung)
    with pytest.raises(RemoteCommandError) as exc:
        run_first_workload(g)
    msg = str(exc.value)
    assert "did not finish" in msg and g.name in msg and "\n" not in msg
    assert exc.value.result.exit_status == result["exit_status"]


def test_run_fio_dead_guest_is_a_guest_error():
    def broken(cmd, timeout):
        return CommandResult(cmd, -1, "", "SSH connection is closed", 0.0)

    with pytest.raises(GuestError) as exc:
        run_first_workload(FakeGuest(broken, alive=False))
    assert exc.value.console_tail == "[ 1.0] Kernel panic"


def test_run_fio_without_scratch_disk():
    scn = scenario()
    g = FakeGuest(fio_ok)
    with pytest.raises(ProbeError, match="no scratch disk"):
        executors.execute(scn, scn.workloads[0], Target("C", g, {"disks": []}))
    assert g.ssh.calls == []  # nothing was run


def test_run_fio_garbage_output_is_a_probe_error():
    def garbage(cmd, timeout):
        return CommandResult(cmd, 0, "fio: command not found in this universe\n", "", 0.1)

    with pytest.raises(ProbeError):
        run_first_workload(FakeGuest(garbage))


def test_fio_on_the_host_baseline_without_its_scratch_file_needs_a_guest():
    scn = scenario()
    with pytest.raises(ProbeError, match="fio workloads need a guest"):
        executors.execute(scn, scn.workloads[0], Target("host", None, {}))


def layout_ok(size):
    def answer(cmd, timeout):
        if "--name=vbench-layout" in cmd:
            return CommandResult(cmd, 0, f"size={size}\n", "", 1.0)
        return fio_ok(cmd, timeout)
    return answer


def test_run_fio_on_a_shared_folder_file_lays_it_out_once_unmeasured():
    g = FakeGuest(layout_ok(256 << 20))
    scn = load_scenario_text(SCENARIO.format(order="interleaved", baseline="false", runtime=5,
                                             ramp=2).replace("ramp_time: 2", "ramp_time: 2, options: {size: 256m}"))
    t = Target("C", g, {"fio_file": "/mnt/vbench-share/vbench-fio.data"})
    executors.execute(scn, scn.workloads[0], t)
    executors.execute(scn, scn.workloads[0], t)
    cmds = [c for c, _ in g.ssh.calls]
    assert len(cmds) == 3  # one layout, then the two measured jobs
    layout = shlex.split(cmds[0].split(" >/dev/null")[0])
    assert "--create_only=1" in layout and "--name=vbench-layout" in layout
    # a read job: fio writes a file out in full only for reads (a write job's create_only left a
    # 0-byte file on 9p, and the first measured randread laid it out in 4k writes, killed as hung)
    assert "--rw=read" in layout and "--bs=1m" in layout and "--size=256m" in layout
    assert "stat -c size=%s /mnt/vbench-share/vbench-fio.data" in cmds[0]
    assert all("--filename=/mnt/vbench-share/vbench-fio.data" in c for c in cmds)
    assert all("--create_only=1" not in c for c in cmds[1:])


@pytest.mark.parametrize("size", [0, 1 << 20])
def test_a_short_layout_is_an_error_not_a_layout_inside_the_measured_job(size):
    g = FakeGuest(layout_ok(size))
    scn = load_scenario_text(SCENARIO.format(order="interleaved", baseline="false", runtime=5,
                                             ramp=2).replace("ramp_time: 2", "ramp_time: 2, options: {size: 256m}"))
    t = Target("C", g, {"fio_file": "/mnt/vbench-share/vbench-fio.data"})
    with pytest.raises(ProbeError, match=f"with {size} bytes, not the 256m"):
        executors.execute(scn, scn.workloads[0], t)
    assert len(g.ssh.calls) == 1  # no measured job ran on a file fio would lay out itself
    assert "fio_file_ready" not in t.facts


def test_run_fio_without_disk_or_shared_file_is_a_probe_error():
    g = FakeGuest(fio_ok)
    scn = scenario()
    with pytest.raises(ProbeError, match="no scratch disk and no shared folder"):
        executors.execute(scn, scn.workloads[0], Target("C", g, {}))
    assert g.ssh.calls == []
