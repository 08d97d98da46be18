"""The resource budget of a scenario, checked against the host before anything boots.

A scenario from someone else must not fill the disk, exhaust memory or keep the host busy for a
month. ``check`` refuses, as one ScenarioError line naming the field and the host figure, a
scenario whose guests together need more scratch disk than is free, more memory than is
available, more vCPUs than the host has, lists longer than the caps, balloon sizes outside the
guest's memory, or an estimated run time beyond ``--max-hours``.

Figures are deliberately simple upper-ish estimates: every variant's guest is up at the same
time (the runner boots them all, then suspends them), a suspended guest keeps its memory.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vbench.core import paths
from vbench.core.errors import ScenarioError
from vbench.scenario.schema import Scenario

MAX_VARIANTS = 16
MAX_WORKLOADS = 32
MAX_UNITS = 20_000
QEMU_OVERHEAD_MIB = 128        # per guest, beyond its RAM
OVERLAY_GIB = 0.5              # a guest's qcow2 overlay and console log, generously
BOOT_ESTIMATE_S = 60.0         # one boot + driver check under TCG
BALLOON_MIN_FREE_MIB = 128     # what a guest keeps besides the memory it is asked to touch
DEFAULT_MAX_HOURS = 24.0


@dataclass(frozen=True)
class HostFigures:
    free_disk_gib: float
    mem_available_mib: float
    cpus: int
    where: str = ""


def host_figures() -> HostFigures:
    """Free disk where guest files go, MemAvailable, and the CPUs vbench may use."""
    d = paths.guests_dir()
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    avail = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        avail = 0.0
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return HostFigures(free, avail, cpus, str(probe))


def unit_seconds(scn: Scenario, index: int) -> float:
    """Estimated seconds of one repetition of ``scn.workloads[index]`` (tool time + slack)."""
    w = scn.workloads[index]
    if w.fio is not None:
        runtime, ramp = scn.fio_runtime(w)
        return runtime + ramp + 2.0
    if w.iperf3 is not None:
        return (w.iperf3.duration + w.iperf3.omit + 2.0) * len(w.iperf3.directions)
    if w.ping is not None:
        return (w.ping.count * w.ping.interval + 2.0) * len(w.ping.directions)
    if w.entropy is not None:
        return min(float(w.entropy.timeout_s), 10.0) + 2.0
    if w.balloon is not None:
        return 10.0
    return 10.0


def estimate_seconds(scn: Scenario, repetitions: int) -> float:
    variants = len(scn.variants) + (1 if scn.host_baseline else 0)
    per_rep = sum(unit_seconds(scn, i) for i in range(len(scn.workloads))) * variants
    boots = len(scn.variants) * (repetitions if scn.fresh_boot else 1)
    return per_rep * repetitions + boots * BOOT_ESTIMATE_S


def _refuse(field: str, text: str) -> None:
    raise ScenarioError(f"scenario {field}: {text}")


def check_lists(scn: Scenario, repetitions: int) -> None:
    if len(scn.variants) > MAX_VARIANTS:
        _refuse("variants", f"{len(scn.variants)} variants; at most {MAX_VARIANTS}")
    if len(scn.workloads) > MAX_WORKLOADS:
        _refuse("workloads", f"{len(scn.workloads)} workloads; at most {MAX_WORKLOADS}")
    units = (len(scn.variants) + scn.host_baseline) * len(scn.workloads) * repetitions
    if units > MAX_UNITS:
        _refuse("repetitions", f"{repetitions} repetitions make {units} units of work; at most "
                f"{MAX_UNITS}")


def check_balloon(scn: Scenario) -> None:
    mem = scn.guest.memory_mib
    for i, w in enumerate(scn.workloads):
        if w.balloon is None:
            continue
        if w.balloon.target_mib >= mem:
            _refuse(f"workloads[{i}].balloon.target_mib", f"{w.balloon.target_mib} MiB must be "
                    f"below the guest's memory (guest.memory_mib {mem} MiB)")
        if w.balloon.touch_mib > mem - BALLOON_MIN_FREE_MIB:
            _refuse(f"workloads[{i}].balloon.touch_mib", f"{w.balloon.touch_mib} MiB does not fit "
                    f"in the guest's memory (guest.memory_mib {mem} MiB, at most "
                    f"{mem - BALLOON_MIN_FREE_MIB} MiB)")


def scratch_gib(scn: Scenario) -> float:
    """Guest files of every variant up at once, plus the host baseline's scratch file."""
    total = 0.0
    for v in scn.variants:
        disk = scn.profile(v).disk
        total += (disk.size_gib if disk is not None else 0.0) + OVERLAY_GIB
    if scn.host_baseline:
        disk = scn.profile(scn.variants[0]).disk
        total += disk.size_gib if disk is not None else 0.0
    return total


def check_host(scn: Scenario, host: HostFigures) -> None:
    if scn.guest.vcpus > host.cpus:
        _refuse("guest.vcpus", f"{scn.guest.vcpus} vCPUs per guest; this host has {host.cpus} "
                f"CPUs")
    guests = 1 if scn.fresh_boot else len(scn.variants)
    mem = guests * (scn.guest.memory_mib + QEMU_OVERHEAD_MIB)
    if mem > host.mem_available_mib:
        _refuse("guest.memory_mib", f"{guests} guest(s) x ({scn.guest.memory_mib} + "
                f"{QEMU_OVERHEAD_MIB}) MiB need {mem} MiB; this host has "
                f"{host.mem_available_mib:.0f} MiB available")
    need = scratch_gib(scn)
    if need > host.free_disk_gib:
        _refuse("disk.size_gib", f"{len(scn.variants)} guest(s) need {need:.1f} GiB of "
                f"scratch and overlay files; {host.where or 'the guests directory'} has "
                f"{host.free_disk_gib:.1f} GiB free")


def check_time(scn: Scenario, repetitions: int, max_hours: float) -> None:
    est = estimate_seconds(scn, repetitions)
    if est > max_hours * 3600:
        _refuse("repetitions", f"estimated run time {est / 3600:.1f} h ({repetitions} "
                f"repetitions) exceeds --max-hours {max_hours:g}; lower repetitions or runtimes, "
                f"or raise --max-hours")


def check(scn: Scenario, repetitions: int, max_hours: float = DEFAULT_MAX_HOURS,
          host: HostFigures | None = None) -> None:
    """All budget checks; ScenarioError (one line, field and host figure) on the first refusal."""
    check_lists(scn, repetitions)
    check_balloon(scn)
    check_time(scn, repetitions, max_hours)
    check_host(scn, host if host is not None else host_figures())
