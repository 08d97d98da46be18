"""vbench's SSH session to a guest is quiet while nothing runs (issue 25: the machinery must not
tax what it measures): no keep-alives over the management NIC, and a silent command (a probe) is
polled less and less often on the host whose CPUs QEMU needs."""

from __future__ import annotations

import types

import paramiko

from vbench.host import ssh as sshmod
from vbench.host.ssh import Ssh


class _Chan:
    """A command that is silent for a number of polls (a probe), then prints and exits 0."""

    def __init__(self, silent_polls: int) -> None:
        self.left = silent_polls
        self.sent = False

    def settimeout(self, t):
        pass

    def exec_command(self, cmd):
        pass

    def recv_ready(self):
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
        self.keepalive: list[int] = []
        self.silent = silent_polls

    def is_active(self):
        return True

    def set_keepalive(self, interval):
        self.keepalive.append(interval)

    def open_session(self, timeout=None):
        return _Chan(self.silent)


class _Client:
    def __init__(self, t=None):
        self.t = t or _Transport()

    def get_transport(self):
        return self.t

    # what SSHClient.connect's caller uses
    def get_host_keys(self):
        return types.SimpleNamespace(add=lambda *a: None)

    def set_missing_host_key_policy(self, p):
        pass

    def connect(self, *a, **kw):
        pass

    def close(self):
        pass


def test_a_guest_session_sends_no_keepalives(monkeypatch):
    client = _Client()
    fake = types.SimpleNamespace(SSHClient=lambda: client, RejectPolicy=paramiko.RejectPolicy,
                                 Ed25519Key=paramiko.Ed25519Key)
    monkeypatch.setattr(sshmod, "_paramiko", lambda: fake)
    monkeypatch.setattr(sshmod.netns, "connect", lambda *a, **kw: object())
    _pkey, pub = sshmod.new_client_key()
    ssh = Ssh.connect("10.254.0.10", "vbench", pub, _pkey)
    assert isinstance(ssh, Ssh)
    assert client.t.keepalive and all(k == 0 for k in client.t.keepalive)  # off, never on
    assert ssh.run("true", timeout=5).ok
    assert all(k == 0 for k in client.t.keepalive)


def test_a_silent_command_is_polled_less_and_less_often(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(sshmod.time, "sleep", slept.append)
    t = _Transport(silent_polls=12)
    res = Ssh(_Client(t), "10.254.0.10").run("sleep 60", timeout=600)
    assert res.ok and res.stdout == "done\n"
    assert slept[0] == sshmod.POLL_MIN_S
    assert slept == sorted(slept) and max(slept) == sshmod.POLL_MAX_S


def test_output_resets_the_poll_to_its_shortest(monkeypatch):
    class _Chatty(_Chan):
        """Silent, prints a line, silent again, then the last line."""

        def __init__(self):
            super().__init__(4)
            self.phase = 0

        def recv_ready(self):
            if self.left > 0:
                self.left -= 1
                return False
            if self.phase == 0:
                return True
            return not self.sent

        def recv(self, n):
            if self.phase == 0:  # the first line; then silent again
                self.phase, self.left = 1, 4
                return b"line\n"
            return super().recv(n)

    slept: list[float] = []
    monkeypatch.setattr(sshmod.time, "sleep", slept.append)
    t = _Transport()
    t.open_session = lambda timeout=None: _Chatty()  # type: ignore[method-assign]
    assert Ssh(_Client(t), "10.254.0.10").run("x", timeout=600).ok
    assert sshmod.POLL_MIN_S in slept[1:] and slept.index(sshmod.POLL_MIN_S, 1) > 1
