"""The resource budget of a scenario, checked against the host before anything boots.

A scenario from someone else must not fill the disk, exhaust memory or keep the host busy for a
month. ``check`` refuses, as one ScenarioError line naming the field and the host figure, a
scenario whose guests together need more scratch disk than is free, more memory than is
available, more vCPUs than the host has, lists longer than the caps, balloon sizes outside the
guest's memory, or an estimated run time beyond ``--max-hours``.

Figures are deliberately simple upper-ish estimates: every variant's guest is up at the same
time (the runner boots them all, then suspends them), a suspended guest keeps its memory.

Host disk counts every file a variant puts on the host: scratch disks, pmem backing files at
their full size, and what fio and fsmeta write into a shared folder (device fs: the guest's
share is a host directory). The host baseline's fio may use no more than its scratch file
(``size`` + ``offset``), which is also enforced while it runs (RLIMIT_FSIZE: the file cannot
grow), and its I/O buffers (``bs`` x ``iodepth`` x ``numjobs``) count as host memory, capped at
:data:`HOST_FIO_BUFFERS_MAX_MIB`.
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
# Calibrated on two stored runs under TCG, each held within 25 % by test_plan: smoke-disk of
# 2026-11-26 (tests/data/runs/20261126-113024-smoke-disk: 169.9 s wall for 30 fio units of 3 s
# tool time, 107.5 s measuring, and 2 boots one after the other with the lab and image checks,
# ~62 s) and tiny of 2026-12-06 (tests/data/estimate/tiny-20261206.json: 78.4 s wall, 26.2 s
# measuring, 2 boots side by side on 2 CPUs, both up after 41 s, with the unpacked kernel).
BOOT_ESTIMATE_S = 40.0         # one wave of boots + driver checks under TCG
MAX_BOOT_WIDTH = 4             # guests a run boots side by side, at most
BALLOON_MIN_FREE_MIB = 128     # what a guest keeps besides the memory it is asked to touch
DEFAULT_MAX_HOURS = 24.0
HOST_FIO_BUFFERS_MAX_MIB = 2048  # bs x iodepth x numjobs of the host baseline (4k x 32 x 4 = 0.5)
GIB = 2**30


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


def boot_width(host_cpus: int | None) -> int:
    """How many guests a run boots side by side: one per CPU of the measuring host (a kernel and
    systemd starting up keep about one busy; the guests already up sit paused), at most
    :data:`MAX_BOOT_WIDTH`; unknown CPUs: one at a time."""
    return max(1, min(host_cpus or 1, MAX_BOOT_WIDTH))


def unit_seconds(scn: Scenario, index: int) -> float:
    """Estimated seconds of one repetition of ``scn.workloads[index]`` (tool time + slack)."""
    w = scn.workloads[index]
    return w.kind.estimate_s(w.spec, scn)  # the workload's own declaration (vbench.workloads)


def boot_waves(scn: Scenario, repetitions: int, host_cpus: int | None = None) -> int:
    """How many boots follow one another: a run boots its variants' guests ``boot_width`` at a
    time; ``fresh_boot`` runs boot one guest per unit, one at a time. Unknown CPUs (another
    host's, or the ``--max-hours`` check, which wants the upper figure): one at a time."""
    if scn.fresh_boot:
        return len(scn.variants) * repetitions
    return -(-len(scn.variants) // boot_width(host_cpus))


def estimate_seconds(scn: Scenario, repetitions: int, host_cpus: int | None = None) -> float:
    variants = len(scn.variants) + (1 if scn.host_baseline else 0)
    per_rep = sum(unit_seconds(scn, i) for i in range(len(scn.workloads))) * variants
    return per_rep * repetitions + boot_waves(scn, repetitions, host_cpus) * BOOT_ESTIMATE_S


def _line(field: str, text: str) -> str:
    return f"scenario {field}: {text}"


def _refuse_first(problems: list[str]) -> None:
    if problems:
        raise ScenarioError.of(problems)


def list_problems(scn: Scenario, repetitions: int) -> list[str]:
    out = []
    if len(scn.variants) > MAX_VARIANTS:
        out.append(_line("variants", f"{len(scn.variants)} variants; at most {MAX_VARIANTS}"))
    if len(scn.workloads) > MAX_WORKLOADS:
        out.append(_line("workloads", f"{len(scn.workloads)} workloads; at most {MAX_WORKLOADS}"))
    units = (len(scn.variants) + scn.host_baseline) * len(scn.workloads) * repetitions
    if units > MAX_UNITS:
        out.append(_line("repetitions", f"{repetitions} repetitions make {units} units of work; "
                         f"at most {MAX_UNITS}"))
    return out


def check_lists(scn: Scenario, repetitions: int) -> None:
    _refuse_first(list_problems(scn, repetitions))


def balloon_problems(scn: Scenario) -> list[str]:
    out = []
    mem = scn.guest.memory_mib
    for i, w in enumerate(scn.workloads):
        if w.balloon is None:
            continue
        if w.balloon.target_mib >= mem:
            out.append(_line(f"workloads[{i}].balloon.target_mib", f"{w.balloon.target_mib} MiB "
                             f"must be below the guest's memory (guest.memory_mib {mem} MiB)"))
        if w.balloon.touch_mib > mem - BALLOON_MIN_FREE_MIB:
            out.append(_line(f"workloads[{i}].balloon.touch_mib", f"{w.balloon.touch_mib} MiB "
                             f"does not fit in the guest's memory (guest.memory_mib {mem} MiB, "
                             f"at most {mem - BALLOON_MIN_FREE_MIB} MiB)"))
    return out


def check_balloon(scn: Scenario) -> None:
    _refuse_first(balloon_problems(scn))


def _bytes(opts: dict, key: str) -> int:
    from vbench.workloads.fioopts import _size_bytes

    return (_size_bytes(str(opts[key])) or 0) if key in opts else 0


def share_gib(scn: Scenario) -> float:
    """What the workloads leave in a shared folder (a host directory) at once: per kind of
    workload the most any one of them writes (each says, ``share_bytes``: a fio file's ``offset``
    + ``size``, an fsmeta set's ``files`` x (``filesize`` + 1 KiB)), summed over the kinds. The
    fio workloads reuse one file, which stays while an fsmeta set is written beside it (and that
    set is removed before the next): the largest of one kind is not the largest of all."""
    most: dict[str, int] = {}
    for w in scn.workloads:
        most[w.kind.tool] = max(most.get(w.kind.tool, 0), w.kind.share_bytes(w, scn))
    return sum(most.values()) / GIB


def _host_files(prof, share: float) -> dict[str, float]:
    """The host files of one variant's devices (scratch disk, pmem backing file, share writes),
    in GiB by the scenario field that asks for them."""
    parts = {"disk.size_gib": 0.0, "pmem.size_mib": 0.0, "workloads": 0.0}
    for dev, spec in prof.present():
        if dev.kind == "disk":
            parts["disk.size_gib"] += spec.size_gib
        elif dev.kind == "pmem":
            parts["pmem.size_mib"] += spec.size_mib / 1024
        elif dev.kind == "fs":
            parts["workloads"] += share  # what the workloads write in the shared folder
    return parts


def _scratch_parts(scn: Scenario) -> dict[str, float]:
    """:func:`scratch_gib` by the scenario field that asks for it (overlays: ``variants``)."""
    share = share_gib(scn)
    parts = {"variants": OVERLAY_GIB * len(scn.variants)}
    for v in scn.variants:
        for name, gib in _host_files(scn.profile(v), share).items():
            parts[name] = parts.get(name, 0.0) + gib
    if scn.host_baseline:
        disk = scn.profile(scn.variants[0]).disk
        parts["disk.size_gib"] += disk.size_gib if disk is not None else 0.0
    return parts


def scratch_gib(scn: Scenario) -> float:
    """Host files of every variant up at once (scratch disks, pmem files, shared folder writes,
    overlays), plus the host baseline's scratch file."""
    return sum(_scratch_parts(scn).values())


def space_field(scn: Scenario) -> str:
    """The scenario field that asks for most of :func:`scratch_gib`: what to make smaller."""
    parts = _scratch_parts(scn)
    return max(parts, key=lambda k: parts[k])


def host_fio_buffers_mib(scn: Scenario) -> float:
    """The host baseline's largest fio buffer need: bs x iodepth x numjobs (0 without one)."""
    if not scn.host_baseline:
        return 0.0
    most = 0
    for w in scn.workloads:
        if w.fio is not None:
            opts = scn.fio_options(w)
            most = max(most, _bytes(opts, "bs") * int(opts.get("iodepth", 1))
                       * int(opts.get("numjobs", 1)))
    return most / 2**20


def host_baseline_problems(scn: Scenario) -> list[str]:
    """The host baseline's fio stays inside its scratch file and a bounded amount of memory."""
    if not scn.host_baseline:
        return []
    out = []
    disk = scn.profile(scn.variants[0]).disk
    scratch = int(disk.size_gib * GIB) if disk is not None else 0
    for i, w in enumerate(scn.workloads):
        if w.fio is None:
            continue
        opts = scn.fio_options(w)
        end = _bytes(opts, "offset") + _bytes(opts, "size")
        if end > scratch:
            out.append(_line(f"workloads[{i}].fio.options.size", f"the host baseline's fio would "
                             f"use {end / GIB:.1f} GiB (offset + size) of a {scratch / GIB:g} GiB "
                             f"scratch file (disk.size_gib); it may not grow it"))
    buffers = host_fio_buffers_mib(scn)
    if buffers > HOST_FIO_BUFFERS_MAX_MIB:
        out.append(_line("workloads.fio", f"the host baseline's fio buffers (bs x iodepth x "
                         f"numjobs) need {buffers:.0f} MiB of host memory; at most "
                         f"{HOST_FIO_BUFFERS_MAX_MIB} MiB"))
    return out


def host_problems(scn: Scenario, host: HostFigures) -> list[str]:
    out = []
    if scn.guest.vcpus > host.cpus:
        out.append(_line("guest.vcpus", f"{scn.guest.vcpus} vCPUs per guest; this host has "
                         f"{host.cpus} CPUs"))
    guests = 1 if scn.fresh_boot else len(scn.variants)
    fio = host_fio_buffers_mib(scn)
    mem = guests * (scn.guest.memory_mib + QEMU_OVERHEAD_MIB) + fio
    if mem > host.mem_available_mib:
        out.append(_line("guest.memory_mib", f"{guests} guest(s) x ({scn.guest.memory_mib} + "
                         f"{QEMU_OVERHEAD_MIB}) MiB" + (f" and the host baseline's fio buffers "
                                                        f"({fio:.0f} MiB)" if fio else "") +
                         f" need {mem:.0f} MiB; this host has {host.mem_available_mib:.0f} MiB "
                         f"available"))
    need = scratch_gib(scn)
    if need > host.free_disk_gib:
        out.append(_line(space_field(scn), f"{len(scn.variants)} guest(s) need {need:.1f} GiB of "
                         f"scratch, pmem, shared-folder and overlay files; "
                         f"{host.where or 'the guests directory'} has {host.free_disk_gib:.1f} GiB free"))
    return out


def check_host(scn: Scenario, host: HostFigures) -> None:
    _refuse_first(host_problems(scn, host))


def time_problems(scn: Scenario, repetitions: int, max_hours: float) -> list[str]:
    est = estimate_seconds(scn, repetitions)
    if est > max_hours * 3600:
        return [_line("repetitions", f"estimated run time {est / 3600:.1f} h ({repetitions} "
                      f"repetitions) exceeds --max-hours {max_hours:g}; lower repetitions or "
                      f"runtimes, or raise --max-hours")]
    return []


def check_time(scn: Scenario, repetitions: int, max_hours: float) -> None:
    _refuse_first(time_problems(scn, repetitions, max_hours))


def problems(scn: Scenario, repetitions: int, max_hours: float = DEFAULT_MAX_HOURS,
             host: HostFigures | None = None) -> list[str]:
    """Every budget problem, one line each (field and host figure); ``host`` None: not checked
    against a host (a fleet's scenario runs elsewhere)."""
    out = list_problems(scn, repetitions) + balloon_problems(scn) + host_baseline_problems(scn)
    out += time_problems(scn, repetitions, max_hours)
    if host is not None:
        out += host_problems(scn, host)
    return out


def check(scn: Scenario, repetitions: int, max_hours: float = DEFAULT_MAX_HOURS,
          host: HostFigures | None = None) -> None:
    """All budget checks; ScenarioError listing every refusal (field and host figure)."""
    _refuse_first(problems(scn, repetitions, max_hours,
                           host if host is not None else host_figures()))
