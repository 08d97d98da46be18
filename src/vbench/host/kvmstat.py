"""KVM's per-VM exit counters of a guest's QEMU, read from the host's debugfs.

Under KVM the kernel keeps counters per VM in ``/sys/kernel/debug/kvm/<qemu pid>-<vm fd>/``: one
file per statistic, each one decimal number (the vCPU statistics summed over the vCPUs). Names
vary by kernel (Debian 12's 6.1 has ``exits``, ``io_exits``, ``mmio_exits``, ``halt_exits``,
``irq_injections`` and some 70 more), so vbench reads what exists and stores only the counters
of :data:`COUNTERS`; one that is missing is *absent* with its reason, never a 0.

debugfs is not mounted by vbench: mounting it is a change to the host that ``lab down`` would
have to undo, on a user's or another host's machine too, and vbench changes nothing there but
its own networks, domains and files. Without it the counters are absent, and say so.

:func:`stats_argv` is the command (an argv list, the pid an int, no shell); :func:`parse_listing`
turns its output into a :class:`KvmCounters`, pure and bounded; :func:`reading` adds what a
failed command means. The host interface (:meth:`vbench.host.hosts.Host.kvm_counters`) runs it
where QEMU runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vbench.core.metrics import KVM_EXIT_METRICS, CommandResult

KVM_DEBUGFS = "/sys/kernel/debug/kvm"

# KVM's counter file -> the metric its delta per operation is stored as. Nothing else is stored.
COUNTERS: dict[str, str] = {
    "exits": "exits_per_op",
    "io_exits": "io_exits_per_op",
    "mmio_exits": "mmio_exits_per_op",
    "halt_exits": "halt_exits_per_op",
    "irq_injections": "irq_injections_per_op",
}
assert tuple(COUNTERS.values()) == KVM_EXIT_METRICS, "COUNTERS and KVM_EXIT_METRICS disagree"

MAX_LISTING_CHARS = 64 << 10  # ~75 one-line files of one VM: a few KiB; more is not a listing
MAX_DIGITS = 20               # a u64
READ_TIMEOUT_S = 10.0
NOT_MOUNTED = ("no KVM statistics on the host: debugfs is not mounted at /sys/kernel/debug "
               "(vbench does not mount it) or KVM is not loaded")


@dataclass(frozen=True)
class KvmCounters:
    """One reading of a VM's counters: values by metric, and why each other metric is absent."""

    values: dict[str, int] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)


def all_absent(reason: str) -> KvmCounters:
    return KvmCounters({}, {m: reason for m in KVM_EXIT_METRICS})


def stats_argv(pid: int) -> list[str]:
    """List the allow-listed counter files of QEMU ``pid``'s VM as ``path:first line`` (``grep
    -m1``: one line a file, whatever the file holds). Only the files of :data:`COUNTERS` are
    read: a VM's debugfs directory also holds files whose reading walks KVM's MMU under its lock
    (``mmu_rmaps_stat``, ``pages_*``); a nested hypervisor guest crashed while every file of its
    VMs was read after each unit (2026-12-05)."""
    pid = int(pid)  # never text from elsewhere in a path pattern
    names = [arg for n in COUNTERS for arg in ("-o", "-name", n)][1:]
    return ["find", KVM_DEBUGFS, "-mindepth", "2", "-maxdepth", "2", "-type", "f",
            "-path", f"{KVM_DEBUGFS}/{pid}-*/*", "(", *names, ")",
            "-exec", "grep", "-H", "-m1", "-s", "", "{}", "+"]


_LINE = re.compile(r"^" + re.escape(KVM_DEBUGFS) + r"/(\d+)-(\d+)/([a-z0-9_]{1,64}):(.*)$")


def parse_listing(text: str, pid: int) -> KvmCounters:
    """The allow-listed counters of QEMU ``pid``'s one VM in a :func:`stats_argv` listing.

    No directory of that pid: absent (a TCG guest, or not this QEMU). Two VMs of one pid:
    absent (which one is the guest's cannot be told). A counter file missing or not a number:
    that metric absent."""
    if len(text) > MAX_LISTING_CHARS:
        return all_absent(f"the KVM statistics listing is larger than {MAX_LISTING_CHARS} "
                          f"characters: not read")
    files: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and int(m.group(1)) == pid:
            files.setdefault(m.group(2), {})[m.group(3)] = m.group(4).strip()
    if not files:
        return all_absent(f"no KVM statistics for QEMU pid {pid} in {KVM_DEBUGFS}")
    if len(files) > 1:
        return all_absent(f"QEMU pid {pid} has {len(files)} KVM VMs in {KVM_DEBUGFS} "
                          f"(fds {', '.join(sorted(files))}): which is the guest's is unknown")
    (fd, stats), = files.items()
    values, absent = {}, {}
    for name, metric in COUNTERS.items():
        raw = stats.get(name)
        if raw is None:
            absent[metric] = f"this kernel has no {name} counter in {KVM_DEBUGFS}/{pid}-{fd}"
        elif raw.isdigit() and len(raw) <= MAX_DIGITS and int(raw) < 1 << 64:
            values[metric] = int(raw)
        else:
            absent[metric] = f"{name} in {KVM_DEBUGFS}/{pid}-{fd} is not a counter: {raw[:40]!r}"
    return KvmCounters(values, absent)


def reading(res: CommandResult, pid: int) -> KvmCounters:
    """What a :func:`stats_argv` command found: no statistics directory at all is debugfs not
    mounted (or KVM not loaded); any other failure is absent with the command's last words."""
    if res.timed_out:
        return all_absent(f"reading {KVM_DEBUGFS} timed out")
    if not res.ok and not res.stdout.strip():
        if "No such file or directory" in res.stderr:
            return all_absent(NOT_MOUNTED)
        return all_absent(f"reading {KVM_DEBUGFS} failed (exit {res.exit_status}): "
                          f"{res.tail(2)[:200]}")
    return parse_listing(res.stdout, pid)
