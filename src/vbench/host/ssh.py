"""SSH into guests: the only module that imports paramiko.

``Ssh.run(cmd, timeout)`` returns a :class:`~vbench.core.metrics.CommandResult` (command, exit status,
stdout, stderr, duration); ``check=True`` turns a failure into a RemoteCommandError that shows the
command, exit status and last lines of output. The guest's host key is pinned (the image's key),
never accepted blindly; the client key is fresh per run and reaches the guest on its kernel
command line. Output is drained while the command runs, so large output (fio JSON) cannot stall
the channel before ``recv_exit_status``.
"""

from __future__ import annotations

import io
import shlex
import time
from typing import Callable

from vbench.host import netns
from vbench.core.errors import CommandTimedOut, GuestError, RemoteCommandError
from vbench.core.metrics import CommandResult
from vbench.core.procs import MAX_OUTPUT_BYTES, output_cap_note


POLL_MIN_S = 0.02   # a command's output is polled this often while it prints ...
POLL_MAX_S = 0.25   # ... and backs off to this while it is silent


def _paramiko():
    import paramiko

    return paramiko


def new_client_key():
    """A fresh ed25519 key pair: (paramiko key, 'ssh-ed25519 AAAA...' public line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption()).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH).decode()
    pkey = _paramiko().Ed25519Key.from_private_key(io.StringIO(pem))
    return pkey, pub


def _host_key(pub_line: str):
    paramiko = _paramiko()
    kind, b64 = pub_line.split()[:2]
    if kind != "ssh-ed25519":
        raise GuestError(f"unsupported pinned host key type {kind}")
    return paramiko.Ed25519Key(data=__import__("base64").b64decode(b64))


class Ssh:
    """An authenticated SSH connection to one guest."""

    def __init__(self, client, addr: str) -> None:
        self._client = client
        self.addr = addr
        # Called about once a second while a command runs; raises (GuestError) when the guest is
        # gone. A destroyed or panicked guest never closes its TCP connection, so without this a
        # command would only end at its timeout.
        self.watch: Callable[[], None] | None = None
        self.max_output = MAX_OUTPUT_BYTES  # stdout + stderr of one command; beyond it: killed

    @classmethod
    def connect(cls, addr: str, ns: str | None, host_key_pub: str, pkey, user: str = "root",
                timeout: float = 10.0, via=None) -> "Ssh":
        """``via``: a vbench.host.remote.RemoteHost whose session reaches ``addr`` (a jump)."""
        paramiko = _paramiko()
        sock = via.jump(addr, 22, timeout) if via is not None else netns.connect(addr, 22, ns,
                                                                                  timeout=timeout)
        client = paramiko.SSHClient()
        client.get_host_keys().add(addr, "ssh-ed25519", _host_key(host_key_pub))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(addr, port=22, username=user, pkey=pkey, sock=sock, timeout=timeout,
                           banner_timeout=timeout, auth_timeout=timeout, look_for_keys=False,
                           allow_agent=False)
        except BaseException:
            client.close()
            sock.close()
            raise
        # No SSH keep-alives (paramiko's default, said here because vbench once sent them every
        # 5 s): they crossed the management NIC and woke the guest's sshd inside measured windows,
        # queued up on a suspended guest's tap and hit it at resume, and, asking for no reply,
        # never detected a dead guest (``watch`` does: libvirt and the console). The lab has no
        # NAT to keep open; a guest on another host is reached inside that host's own session.
        t = client.get_transport()
        if t is not None:
            t.set_keepalive(0)
        return cls(client, addr)

    def run(self, command: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        """Run ``command`` (a shell string) with a hard bound on its duration.

        Checked by default (invoke's runners): a non-zero exit raises RemoteCommandError, a
        timeout CommandTimedOut; ``check=False`` returns the failed result instead. Transport
        failures (sshd gone, channel refused, connection reset) are a failed result (exit -1, the
        reason in stderr), never a paramiko exception.
        """
        paramiko = _paramiko()
        t0 = time.monotonic()
        try:
            res = self._run(command, timeout, t0)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            res = CommandResult(command, -1, "", f"SSH failure: {type(exc).__name__}: {exc}",
                                time.monotonic() - t0)
        if check and not res.ok:
            if res.timed_out:
                raise CommandTimedOut(res, f"command timed out after {timeout:.0f} s: {command} "
                                           f"-- last output: {res.tail()}")
            raise RemoteCommandError(res)
        return res

    def _run(self, command: str, timeout: float, t0: float) -> CommandResult:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            return CommandResult(command, -1, "", "SSH connection is closed", 0.0)
        chan = transport.open_session(timeout=10)
        chan.settimeout(1.0)
        chan.exec_command(command)
        out, err = bytearray(), bytearray()
        timed_out = capped = False
        deadline = t0 + timeout
        next_watch = t0 + 1.0
        idle = POLL_MIN_S
        while True:
            if self.watch is not None and time.monotonic() > next_watch:
                next_watch = time.monotonic() + 1.0
                try:
                    self.watch()
                except BaseException:
                    chan.close()
                    raise
            got = False
            while chan.recv_ready() and len(out) + len(err) <= self.max_output:
                out += chan.recv(65536)
                got = True
            while chan.recv_stderr_ready() and len(out) + len(err) <= self.max_output:
                err += chan.recv_stderr(65536)
                got = True
            if len(out) + len(err) > self.max_output:
                capped = True  # closing the channel ends the command (SIGPIPE/SIGHUP in the guest)
                break
            if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            if not transport.is_active():
                break
            if got:
                idle = POLL_MIN_S
            else:  # a long silent probe: poll less often (this process shares the host's CPUs)
                time.sleep(idle)
                idle = min(idle * 2, POLL_MAX_S)
        if timed_out or capped or not chan.exit_status_ready():
            status = -1
        else:
            status = chan.recv_exit_status()
        chan.close()
        cap = self.max_output
        res = CommandResult(command, status, out[:cap].decode(errors="replace"),
                            err[:cap].decode(errors="replace"), time.monotonic() - t0,
                            timed_out=timed_out)
        if capped:
            res.stderr += ("\n" if res.stderr else "") + output_cap_note(cap)
            res.extra["output_capped"] = True
        if not transport.is_active() and not res.ok and not timed_out:
            res.stderr += "\n(SSH connection lost)"
        return res

    def run_argv(self, argv: list[str], timeout: float = 60.0, check: bool = True) -> CommandResult:
        return self.run(shlex.join(argv), timeout=timeout, check=check)

    def is_alive(self) -> bool:
        t = self._client.get_transport()
        return bool(t and t.is_active())

    def close(self) -> None:
        self._client.close()


def wait_for_ssh(addr: str, ns: str | None, host_key_pub: str, pkey, user: str, deadline: float,
                 alive: Callable[[], None] | None = None, via=None) -> Ssh:
    """Retry until sshd answers and authenticates, the deadline passes, or the guest dies."""
    paramiko = _paramiko()
    last = "no attempt"
    while time.monotonic() < deadline:
        if alive:
            alive()
        try:
            ssh = Ssh.connect(addr, ns, host_key_pub, pkey, user, timeout=5, via=via)
            if ssh.run("true", timeout=10, check=False).ok:
                return ssh
            ssh.close()
        except paramiko.BadHostKeyException:
            raise GuestError(f"{addr} presented a host key that is not the image's pinned key; "
                             f"refusing to connect") from None
        except (OSError, paramiko.SSHException, EOFError, TimeoutError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(1.0)
    raise GuestError(f"SSH on {addr} did not answer before the boot timeout (last: {last})")
