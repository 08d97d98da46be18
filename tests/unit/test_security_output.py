"""Issue 10, finding 3: captured output is capped on the host (procs.run) and in guests (SSH);
the command is killed and the unit fails with the reason (ioengine=exec with `yes` produced
2.7 GB in 2 s before)."""

from __future__ import annotations

import time

from vbench.core import procs
from vbench.core.errors import RemoteCommandError
from vbench.host.ssh import Ssh


def test_host_command_over_the_cap_is_killed_and_fails():
    t0 = time.monotonic()
    res = procs.run(["yes"], timeout=60, max_output=1 << 20, check=False)
    assert time.monotonic() - t0 < 10  # killed at the cap, not at the timeout
    assert not res.ok and res.exit_status == -1 and res.extra.get("output_capped")
    assert len(res.stdout) <= 1 << 20
    assert "exceeded the cap of 1 MiB" in res.stderr
    assert "exceeded the cap" in str(RemoteCommandError(res))  # what the unit's failure records


def test_host_default_cap_applies():
    res = procs.run(["sh", "-c", "yes | head -c 80000000"], timeout=60, check=False)
    assert res.extra.get("output_capped") and len(res.stdout) <= procs.MAX_OUTPUT_BYTES


def test_host_command_under_the_cap_is_untouched():
    res = procs.run(["sh", "-c", "printf out; printf err >&2; exit 3"], input="x", check=False)
    assert (res.exit_status, res.stdout, res.stderr) == (3, "out", "err")
    assert not res.extra.get("output_capped")
    res = procs.run(["cat"], input="hello\n" * 1000)
    assert res.ok and res.stdout == "hello\n" * 1000


def test_host_timeout_still_works():
    res = procs.run(["sleep", "30"], timeout=0.5, check=False)
    assert res.timed_out and not res.ok


class _Chan:
    """A channel whose command prints forever (like `yes` in the guest)."""

    def __init__(self):
        self.closed = False

    def settimeout(self, t):
        pass

    def exec_command(self, cmd):
        pass

    def recv_ready(self):
        return not self.closed

    def recv(self, n):
        return b"y\n" * (n // 2)

    def recv_stderr_ready(self):
        return False

    def exit_status_ready(self):
        return False

    def close(self):
        self.closed = True


class _Transport:
    def __init__(self):
        self.chan = _Chan()

    def is_active(self):
        return True

    def open_session(self, timeout=None):
        return self.chan


class _Client:
    def __init__(self):
        self.t = _Transport()

    def get_transport(self):
        return self.t


def test_guest_command_over_the_cap_is_stopped_and_fails():
    client = _Client()
    ssh = Ssh(client, "10.0.0.2")
    ssh.max_output = 2 << 20
    t0 = time.monotonic()
    res = ssh.run("yes", timeout=60, check=False)
    assert time.monotonic() - t0 < 10
    assert client.t.chan.closed  # the channel (and with it the command) was closed
    assert not res.ok and res.extra.get("output_capped")
    assert len(res.stdout) <= 2 << 20 and "exceeded the cap of 2 MiB" in res.stderr


class _SilentChan(_Chan):
    """A channel whose command never prints and never ends (a hang)."""

    def recv_ready(self):
        return False


def test_guest_command_is_checked_by_default_and_a_hang_is_command_timed_out():
    import pytest

    from vbench.core.errors import CommandTimedOut

    client = _Client()
    client.t.chan = _SilentChan()
    with pytest.raises(CommandTimedOut) as exc:
        Ssh(client, "10.0.0.2").run("sleep 600", timeout=0.2)
    assert exc.value.result.timed_out and "timed out after 0 s: sleep 600" in str(exc.value)
    client.t.chan = _SilentChan()
    res = Ssh(client, "10.0.0.2").run("sleep 600", timeout=0.2, check=False)
    assert res.timed_out and not res.ok
