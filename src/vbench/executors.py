"""Executing one workload once: build the command, run it where it belongs, time the host side,
parse the output. One function per tool; the runner calls them through ``EXECUTORS``.

Each executor returns ``(samples, raw_text)``; any failure raises a UserError subclass (probe,
remote command, guest) that the runner records as a failed repetition.
"""

from __future__ import annotations

import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import procs
from .errors import GuestError, ProbeError, RemoteCommandError
from .model import Sample
from .scenario import Scenario, Workload


@dataclass
class Target:
    """Where a workload runs: a booted guest of a variant, or the host (baseline)."""

    variant: str
    guest: object | None = None          # virt.Guest, None for the host baseline
    facts: dict = field(default_factory=dict)
    host_scratch: Path | None = None     # host baseline's backing file
    lab: object | None = None


class CpuWindow:
    """CPU seconds a process uses in a time window [start+delay, start+delay+length], sampled by
    timers so that it lines up with fio's measured window (ramp time left out)."""

    def __init__(self, pid: int | None, delay: float, length: float) -> None:
        self.pid = pid
        self.values: list[float | None] = []
        self._timers = [threading.Timer(delay, self._sample), threading.Timer(delay + length, self._sample)]

    def _sample(self) -> None:
        self.values.append(procs.cpu_seconds(self.pid) if self.pid else None)

    def __enter__(self) -> "CpuWindow":
        for t in self._timers:
            t.daemon = True
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        for t in self._timers:
            t.cancel()

    def seconds(self) -> float | None:
        if len(self.values) == 2 and None not in self.values:
            return self.values[1] - self.values[0]  # type: ignore[operator]
        return None


def run_fio(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    from .probes.fio import fio_argv, fio_total_ios, parse_fio_json

    runtime, ramp = scn.fio_runtime(w)
    opts = scn.fio_options(w)
    bound = runtime + ramp + 120
    if target.guest is None:
        assert target.host_scratch is not None
        argv = fio_argv(w.name, str(target.host_scratch), opts, runtime, ramp)
        res = procs.run(["timeout", "-k", "5", str(bound - 30)] + argv, timeout=bound)
        if not res.ok:
            raise RemoteCommandError(res)
        text = res.stdout
        samples = parse_fio_json(text, w.name)
        return samples, text
    g = target.guest
    disks = target.facts.get("disks") or []
    if not disks:
        raise ProbeError(f"no scratch disk was found in guest {g.name}")
    dev = disks[0]["dev"]
    argv = fio_argv(w.name, f"/dev/{dev}", opts, runtime, ramp)
    cmd = shlex.join(["timeout", "-k", "5", str(bound - 30)] + argv)
    with CpuWindow(g.qemu_pid(), ramp, runtime) as cpu:
        res = g.ssh.run(cmd, timeout=bound)
    if not res.ok:
        if res.timed_out:
            raise RemoteCommandError(res, f"fio did not finish within {bound} s in {g.name} (hung?)")
        g.check_alive()
        raise RemoteCommandError(res)
    text = res.stdout
    samples = parse_fio_json(text, w.name)
    host_cpu = cpu.seconds()
    ios = fio_total_ios(text)
    if host_cpu is not None and ios > 0:
        samples.append(Sample(w.name, "host_cpu_per_io", host_cpu / ios * 1e6, "us"))
    return samples, text


Executor = Callable[[Scenario, Workload, Target], tuple[list[Sample], str]]
EXECUTORS: dict[str, Executor] = {"fio": run_fio}


def register(tool: str):
    def deco(fn: Executor) -> Executor:
        EXECUTORS[tool] = fn
        return fn
    return deco


def execute(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    fn = EXECUTORS.get(w.tool)
    if fn is None:
        raise ProbeError(f"workload {w.name}: the {w.tool} probe is not available in this vbench")
    return fn(scn, w, target)
