"""Processes vbench starts and stops itself, identified by pid *and* start time.

Cleanup never finds processes by name: it stops exactly the pids it recorded when it started them,
and only if the process still has the recorded start time (so a recycled pid is left alone).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vbench.core.metrics import CommandResult


@dataclass(frozen=True)
class ProcRef:
    pid: int
    starttime: int  # clock ticks since boot (field 22 of /proc/PID/stat)
    what: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ProcRef":
        return cls(int(d["pid"]), int(d["starttime"]), str(d.get("what", "")))


KILL_GRACE_S = 5  # SIGKILL this long after timeout's SIGTERM, even if the command is stopped


def killed_after(seconds: float) -> list[str]:
    """``timeout -k 5 SECONDS``: the prefix that bounds every command vbench runs in a guest or
    on a host (``timeout`` signals the whole process group, then SIGKILL after the grace)."""
    return ["timeout", "-k", str(KILL_GRACE_S), str(int(seconds))]


def starttime(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])


def ref(pid: int, what: str = "") -> ProcRef | None:
    st = starttime(pid)
    return ProcRef(pid, st, what) if st is not None else None


def alive(p: ProcRef) -> bool:
    st = starttime(p.pid)
    if st is None or st != p.starttime:
        return False
    try:
        state = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(p: ProcRef, timeout: float = 10.0) -> bool:
    """SIGTERM the recorded process (only if it is still the same one), SIGKILL after timeout."""
    if not alive(p):
        return False
    try:
        os.kill(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(p):
            return True
        time.sleep(0.1)
    if alive(p):
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


def read_pidfile(path: Path) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


MAX_OUTPUT_BYTES = 64 << 20  # stdout + stderr of one captured command


def output_cap_note(cap: int) -> str:
    return (f"output exceeded the cap of {cap >> 20} MiB (stdout + stderr); the command was "
            f"killed")


def run(argv: list[str], timeout: float = 60, check: bool = True, input: str | None = None,
        env: dict | None = None, max_output: int = MAX_OUTPUT_BYTES) -> CommandResult:
    """Run a host command with a bound on its time and on its captured output.

    Checked by default: a failure raises RemoteCommandError, a timeout CommandTimedOut;
    ``check=False`` returns the failed result. A command that prints more than ``max_output``
    bytes is killed and its result fails (exit -1) with the reason in ``stderr`` and
    ``extra['output_capped']``."""
    import threading

    from vbench.core.errors import CommandTimedOut, RemoteCommandError

    t0 = time.monotonic()
    cmd = " ".join(argv)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else
                                subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    except FileNotFoundError:
        res = CommandResult(cmd, 127, "", f"{argv[0]}: not installed", time.monotonic() - t0)
        if check:
            raise RemoteCommandError(res)
        return res
    if input is not None:
        stdin = proc.stdin
        assert stdin is not None  # stdin=PIPE above

        def feed() -> None:
            try:
                stdin.write(input.encode())
                stdin.close()
            except OSError:
                pass

        threading.Thread(target=feed, daemon=True).start()
    status, out, err, capped, timed_out = _collect(proc, t0 + timeout, max_output)
    res = CommandResult(cmd, -1 if (capped or timed_out) else status, out, err,
                        time.monotonic() - t0, timed_out=timed_out)
    if capped:
        res.stderr += ("\n" if res.stderr else "") + output_cap_note(max_output)
        res.extra["output_capped"] = True
    if check and not res.ok:
        raise (CommandTimedOut if res.timed_out else RemoteCommandError)(res)
    return res


def _collect(proc: subprocess.Popen, deadline: float,
             max_output: int) -> tuple[int, str, str, bool, bool]:
    """Read ``proc``'s stdout and stderr until it closes them, ``deadline`` passes or they hold
    more than ``max_output`` bytes (then kill it); (status, stdout, stderr, capped, timed out)."""
    import selectors

    assert proc.stdout is not None and proc.stderr is not None  # stdout=stderr=PIPE
    fd_out, fd_err = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {fd_out: bytearray(), fd_err: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    capped = timed_out = False
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(min(left, 1.0)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                bufs[key.fd] += chunk
            if sum(len(b) for b in bufs.values()) > max_output:
                capped = True
                break
    finally:
        sel.close()
        if capped or timed_out:
            proc.kill()
        try:
            status = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    out, err = (bytes(bufs[fd][:max_output]).decode(errors="replace") for fd in (fd_out, fd_err))
    return status, out, err, capped, timed_out


def _s(b) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b
