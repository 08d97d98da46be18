"""While a command (a probe) runs, vbench's SSH session sends no keep-alives over the management
NIC, and restores them afterwards (issue 25: the machinery must not tax what it measures)."""

from __future__ import annotations

from vbench.host import ssh as sshmod
from vbench.host.ssh import Ssh


class _Chan:
    """A command that is silent for a while (a probe), then prints and exits 0."""

    def __init__(self, transport, silent_polls: int) -> None:
        self.t = transport
        self.left = silent_polls
        self.sent = False

    def settimeout(self, t):
        pass

    def exec_command(self, cmd):
        # the keep-alive the transport has while the command starts
        self.t.seen.append(("exec", self.t.keepalive))

    def recv_ready(self):
        self.t.seen.append(("poll", self.t.keepalive))
        if self.left > 0:
            self.left -= 1
            return False
        return not self.sent

    def recv(self, n):
        self.sent = True
        return b"done\n"

    def recv_stderr_ready(self):
        return False

    def exit_status_ready(self):
        return self.sent

    def recv_exit_status(self):
        return 0

    def close(self):
        pass


class _Transport:
    def __init__(self, silent_polls: int = 3) -> None:
        self.keepalive = sshmod.KEEPALIVE_S
        self.calls: list[int] = []
        self.seen: list[tuple[str, int]] = []
        self.silent = silent_polls

    def is_active(self):
        return True

    def set_keepalive(self, interval):
        self.calls.append(interval)
        self.keepalive = interval

    def open_session(self, timeout=None):
        return _Chan(self, self.silent)


class _Client:
    def __init__(self, t):
        self.t = t

    def get_transport(self):
        return self.t


def test_no_keepalive_while_a_command_runs_and_restored_after(monkeypatch):
    monkeypatch.setattr(sshmod.time, "sleep", lambda s: None)
    t = _Transport()
    ssh = Ssh(_Client(t), "10.254.0.10")
    res = ssh.run("fio --name=x", timeout=60)
    assert res.ok and res.stdout == "done\n"
    assert t.seen and all(k == 0 for _, k in t.seen)  # off from exec to the last poll
    assert t.calls == [0, sshmod.KEEPALIVE_S]         # and back on once it returned


def test_keepalive_restored_when_the_command_fails(monkeypatch):
    monkeypatch.setattr(sshmod.time, "sleep", lambda s: None)
    t = _Transport()

    def boom(timeout=None):
        raise EOFError("channel refused")

    t.open_session = boom  # type: ignore[method-assign]
    res = Ssh(_Client(t), "10.254.0.10").run("true", timeout=5, check=False)
    assert not res.ok and "SSH failure" in res.stderr
    assert t.calls == [0, sshmod.KEEPALIVE_S]


def test_a_silent_command_is_polled_less_and_less_often(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(sshmod.time, "sleep", slept.append)
    t = _Transport(silent_polls=12)
    assert Ssh(_Client(t), "10.254.0.10").run("sleep 60", timeout=600).ok
    assert slept[0] == sshmod.POLL_MIN_S
    assert slept == sorted(slept) and max(slept) == sshmod.POLL_MAX_S
