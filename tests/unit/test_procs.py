"""Processes identified by pid *and* start time; bounded host commands.

The recycled-pid protection is tested on a real child: a ProcRef whose start time does not match
is treated as a different process, so ``stop()`` must leave the real one running.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from vbench.core import procs
from vbench.core.errors import CommandTimedOut, RemoteCommandError, UserError


@pytest.fixture
def sleeper():
    p = subprocess.Popen(["sleep", "30"])
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(5)


def test_ref_of_a_live_child_is_alive(sleeper):
    r = procs.ref(sleeper.pid, "sleeper")
    assert r is not None and r.pid == sleeper.pid and r.what == "sleeper"
    assert r.starttime == procs.starttime(sleeper.pid) and r.starttime > 0
    assert procs.alive(r)


def test_wrong_starttime_is_not_alive_and_is_not_stopped(sleeper):
    right = procs.ref(sleeper.pid)
    recycled = procs.ProcRef(sleeper.pid, right.starttime + 1, "someone else")
    assert not procs.alive(recycled)
    assert procs.stop(recycled, timeout=1) is False
    time.sleep(0.1)  # a signal, had one been sent, would have landed by now
    assert sleeper.poll() is None, "stop() killed a process whose start time did not match"
    assert procs.alive(right)

    assert procs.stop(right, timeout=5) is True
    assert sleeper.wait(5) == -15  # SIGTERM, from stop()
    assert not procs.alive(right)
    assert procs.stop(right) is False  # already gone: nothing to do


def test_stop_kills_a_process_ignoring_sigterm():
    p = subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "print('ready', flush=True); time.sleep(30)"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        r = procs.ref(p.pid)
        assert procs.stop(r, timeout=0.3) is True
        assert p.wait(5) == -9  # SIGKILL after the timeout
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)


def test_procref_dict_round_trip():
    r = procs.ProcRef(123, 456, "libvirtd")
    assert procs.ProcRef.from_dict(r.to_dict()) == r
    assert procs.ProcRef.from_dict({"pid": "7", "starttime": "8"}) == procs.ProcRef(7, 8, "")


def test_gone_pid():
    # pid_max is at most 2**22 on Linux: this pid cannot exist.
    assert procs.starttime(2**22 + 1) is None
    assert procs.ref(2**22 + 1) is None
    assert not procs.alive(procs.ProcRef(2**22 + 1, 1))
    assert procs.cpu_seconds(2**22 + 1) is None
    assert procs.rss_mib(2**22 + 1) is None


def test_cpu_seconds_and_rss_of_this_process():
    before = procs.cpu_seconds(os.getpid())
    t_end = time.process_time() + 0.05
    while time.process_time() < t_end:  # burn a little CPU
        pass
    after = procs.cpu_seconds(os.getpid())
    assert isinstance(before, float) and isinstance(after, float)
    assert 0 <= before <= after
    assert after - before >= 0.02  # clock-tick resolution: 0.01 s
    rss = procs.rss_mib(os.getpid())
    assert isinstance(rss, float) and 5 < rss < 100000


def test_starttime_with_spaces_and_parens_in_comm():
    # The command name (field 2 of /proc/PID/stat) may contain ') (': parsing must split after the
    # last ')'.
    p = subprocess.Popen(["bash", "-c", "exec -a 'x) (y' sleep 30"])
    try:
        time.sleep(0.05)
        st = procs.starttime(p.pid)
        assert st is not None and procs.alive(procs.ProcRef(p.pid, st))
    finally:
        p.kill()
        p.wait(5)


def test_read_pidfile(tmp_path):
    f = tmp_path / "x.pid"
    f.write_text("4242\n")
    assert procs.read_pidfile(f) == 4242
    f.write_text("garbage")
    assert procs.read_pidfile(f) is None
    f.write_text("")
    assert procs.read_pidfile(f) is None
    assert procs.read_pidfile(tmp_path / "missing.pid") is None


# ---- run -------------------------------------------------------------------------------------------

def test_run_ok():
    res = procs.run(["sh", "-c", "echo out; echo err >&2; exit 0"], timeout=5)
    assert res.ok and res.exit_status == 0 and not res.timed_out
    assert res.stdout == "out\n" and res.stderr == "err\n"
    assert res.command == "sh -c echo out; echo err >&2; exit 0"
    assert res.duration >= 0


def test_run_nonzero_exit_raises_by_default_and_returns_with_check_false():
    res = procs.run(["sh", "-c", "echo boom >&2; exit 3"], timeout=5, check=False)
    assert not res.ok and res.exit_status == 3 and res.tail() == "boom"
    with pytest.raises(RemoteCommandError) as exc:
        procs.run(["sh", "-c", "echo boom >&2; exit 3"], timeout=5)
    msg = str(exc.value)
    assert "exit 3" in msg and "sh -c" in msg and "boom" in msg
    assert exc.value.result.exit_status == 3
    assert not isinstance(exc.value, CommandTimedOut)


def test_run_timeout():
    t0 = time.monotonic()
    res = procs.run(["sh", "-c", "echo started; sleep 10"], timeout=0.3, check=False)
    assert time.monotonic() - t0 < 5
    assert res.timed_out is True and not res.ok and res.exit_status == -1


def test_run_timeout_is_its_own_error_when_checked():
    with pytest.raises(CommandTimedOut) as exc:
        procs.run(["sh", "-c", "echo started; sleep 10"], timeout=0.3)
    assert exc.value.result.timed_out and exc.value.result.stdout == "started\n"
    assert isinstance(exc.value, RemoteCommandError)  # callers catching failures catch hangs too


def test_run_missing_binary():
    res = procs.run(["vbench-no-such-binary-xyz", "--flag"], timeout=5, check=False)
    assert res.exit_status == 127 and not res.ok and not res.timed_out
    assert res.stderr == "vbench-no-such-binary-xyz: not installed"
    with pytest.raises(RemoteCommandError) as exc:
        procs.run(["vbench-no-such-binary-xyz"], timeout=5)
    assert isinstance(exc.value, UserError)
    assert "exit 127" in str(exc.value) and "not installed" in str(exc.value)


def test_run_input_and_env():
    res = procs.run(["sh", "-c", "cat; echo \"$VB_X\""], timeout=5, input="in\n",
                    env={"VB_X": "42", "PATH": os.environ["PATH"]})
    assert res.stdout == "in\n42\n"
