"""One real ``vbench run`` per host, as a child process; progress, logs, signals.

Each child is the ordinary command line (``python -m vbench run SCENARIO --results DIR
--no-report [--connect URI]``), optionally inside a network namespace (``ip netns exec NAME``),
with the host's allow-listed environment added. No shell is involved: the argv is a list.
Children run in sessions of their own, so a terminal's Ctrl-C reaches only the fleet process,
which forwards SIGTERM to every child (``vbench run`` cleans up its guests on it, like on
Ctrl-C) and waits for all of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from vbench.fleet.hosts import Host
from vbench.results.rundir import is_run_dir
from vbench.fleet.schedule import Outcome

RUN_LOG = "run.log"
INTERRUPTED = 130
UNITS_FAILED = 11


def child_argv(host: Host, scenario: str, results: Path, extra: Sequence[str] = (),
               python: str = sys.executable) -> list[str]:
    """The argv of one host's run (a list: nothing here is ever parsed by a shell)."""
    argv = [python, "-m", "vbench", "run", scenario, "--results", str(results), "--no-report",
            *extra]
    if host.connect:
        argv += ["--connect", host.connect]
    if host.netns:
        argv = ["ip", "netns", "exec", host.netns, *argv]
    return argv


def child_env(host: Host, base: dict[str, str] | None = None) -> dict[str, str]:
    return {**(os.environ if base is None else base), **host.env}


MESSAGE_CHARS = 400


def classify(code: int, run_dir: Path | None, last_error: str) -> tuple[str, str]:
    """(status, one-line message) of a child that exited with ``code``. A run whose units failed
    is told by its own record: which units failed and why (its last printed line is only the
    ``run:`` path)."""
    if code == 0 and run_dir is not None:
        return "complete", ""
    if code == INTERRUPTED:
        return "interrupted", last_error or "interrupted; its guests were destroyed"
    if code == UNITS_FAILED and run_dir is not None:
        return "failed", failures_line(run_dir) or last_error or \
            "some repetitions failed (recorded in run.json)"
    return "failed", last_error or f"vbench run exited {code}"


def failures_line(run_dir: Path) -> str:
    """One line naming a run's recorded failures ("2 failure(s): sata rep 2 randread: ...; ..."),
    empty when its record cannot be read or holds none (the record is the child's, read as
    untrusted like any run directory)."""
    from vbench.core.errors import UserError
    from vbench.results.rundir import load_record

    try:
        fails = load_record(run_dir).failures
    except (UserError, OSError, ValueError):
        return ""
    if not fails:
        return ""
    parts = []
    for f in fails:
        unit = f.variant + (f" rep {f.repetition}" if f.repetition is not None else "") + \
            ("" if f.workload == "*" else f" {f.workload}")
        first = (f.error.strip().splitlines() or [f.error_type or "no reason recorded"])[0]
        parts.append(f"{unit}: {first}")
    line = f"{len(fails)} failure(s): " + "; ".join(parts)
    return line if len(line) <= MESSAGE_CHARS else line[:MESSAGE_CHARS - 3] + "..."


class Launcher:
    """Starts and watches the children; :meth:`interrupt` forwards a signal to all of them."""

    def __init__(self, scenario: str, hosts_dir: Path, progress: Callable[[str], None],
                 extra: Sequence[str] = ()) -> None:
        self.scenario, self.hosts_dir, self.progress, self.extra = scenario, hosts_dir, progress, extra
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._children: dict[str, subprocess.Popen] = {}
        self._signalled: set[int] = set()

    def interrupt(self, signum: int = signal.SIGTERM) -> int:
        """Stop starting hosts and pass ``signum`` once to every running child (a second signal
        would cut short the cleanup the first started); how many children are still running."""
        with self._lock:
            self.stop.set()
            kids = list(self._children.values())
            fresh = [c for c in kids if c.pid not in self._signalled]
            self._signalled.update(c.pid for c in fresh)
        for child in fresh:
            try:
                os.killpg(child.pid, signum)
            except ProcessLookupError:
                pass
        return len(kids)

    def _start(self, host: Host, results: Path) -> subprocess.Popen | None:
        with self._lock:
            if self.stop.is_set():
                return None
            child = subprocess.Popen(
                child_argv(host, self.scenario, results, self.extra), env=child_env(host),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, errors="replace", start_new_session=True)
            self._children[host.name] = child
            return child

    def run(self, host: Host, group: int) -> Outcome:
        """Run ``host``'s child to its end; its output goes to hosts/NAME/run.log and, prefixed
        with the host's name, to the progress stream."""
        out = Outcome(host, group)
        results = self.hosts_dir / host.name
        results.mkdir(parents=True, exist_ok=True)
        out.started = time.time()
        child = self._start(host, results)
        if child is None:
            out.status, out.message, out.started = "skipped", "not started: interrupted", None
            return out
        run_dir, last_error, last_line = None, "", ""
        try:
            with open(results / RUN_LOG, "w", encoding="utf-8") as log:
                assert child.stdout is not None
                for line in child.stdout:
                    log.write(line)
                    log.flush()
                    line = line.rstrip("\n")
                    self.progress(f"[{host.name}] {line}")
                    if line.startswith("run: "):
                        run_dir = Path(line[5:].strip())
                    elif line.startswith("vbench: "):
                        last_error = line[len("vbench: "):][:300]
                    else:
                        last_line = line.strip()[:300] or last_line
            code = child.wait()
        finally:
            with self._lock:
                self._children.pop(host.name, None)
        out.finished = time.time()
        out.exit_status = code
        out.run_dir = run_dir if run_dir is not None and is_run_dir(run_dir) else \
            _only_run(results)  # an interrupted run prints no "run:" line but keeps its directory
        out.status, out.message = classify(code, out.run_dir, last_error or last_line)
        return out


def _only_run(results: Path) -> Path | None:
    from vbench.results.rundir import find_runs

    runs = find_runs(results)
    return runs[-1] if runs else None
