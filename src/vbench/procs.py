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

from .model import CommandResult


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


def run(argv: list[str], timeout: float = 60, check: bool = False, input: str | None = None,
        env: dict | None = None) -> CommandResult:
    """Run a host command with a bound; never raises on failure unless ``check``."""
    from .errors import RemoteCommandError

    t0 = time.monotonic()
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                            env=env)
        res = CommandResult(" ".join(argv), cp.returncode, cp.stdout, cp.stderr, time.monotonic() - t0)
    except subprocess.TimeoutExpired as exc:
        res = CommandResult(" ".join(argv), -1, _s(exc.stdout), _s(exc.stderr),
                            time.monotonic() - t0, timed_out=True)
    except FileNotFoundError:
        res = CommandResult(" ".join(argv), 127, "", f"{argv[0]}: not installed",
                            time.monotonic() - t0)
    if check and not res.ok:
        raise RemoteCommandError(res)
    return res


def _s(b) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b
