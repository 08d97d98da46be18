"""The host scheduler's autogroup: one home for the setting, the fact a run records of it, and
the lab's turning it off and on again.

With autogroup on (the kernel's default where it is built in), every session is its own CPU
group and the scheduler shares the CPUs between groups before threads. A guest's QEMU, started
by libvirt in a session of its own, is then one group and the host-side peer of a network probe
(iperf3 -s, ping) another: on a host with fewer spare CPUs than both want, QEMU's vCPU threads
wait for the peer's group instead of sharing the CPUs thread by thread. Measured on a 2-CPU TCG
host (issue 25): rtl8139 guest-to-host read 14-17 % below the same guest in a raw QEMU that
shared a session with its peer; with autogroup off the two launches read alike. The lab turns
it off while it is up (``lab.up``, the old value recorded first) and ``lab.down`` turns it on
again; a user's own libvirt or another host is left as it is and only recorded.
"""

from __future__ import annotations

from pathlib import Path

AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")

# The kernel's value -> what a run records (Environment.host_scheduler): short, stable words,
# compared between runs (policy.CHECKED_METADATA). "none": a kernel built without autogroup.
FACTS = {"0": "autogroup off", "1": "autogroup on", "none": "no autogroup"}
UNKNOWN = "unknown"
# Said when a user's own libvirt on this host (``lab up --connect``) runs with autogroup on.
LEFT_ON = ("scheduler autogroup is on and vbench leaves a user's host as it is: runs record it, "
           "and a network probe may read low on a busy host (`sysctl "
           "kernel.sched_autogroup_enabled=0` turns it off)")


def read() -> str:
    """The kernel's value ("0", "1"), "none" when this kernel has no autogroup, "unknown" when
    it cannot be read."""
    try:
        value = AUTOGROUP.read_text().strip()
    except FileNotFoundError:
        return "none"
    except OSError:
        return UNKNOWN
    return value if value in ("0", "1") else UNKNOWN


def read_sh() -> str:
    """A POSIX sh command that prints on another machine what :func:`read` gives here (the
    value, or "none" without autogroup); :func:`fact` reads its output."""
    return f"cat {AUTOGROUP} 2>/dev/null || echo none"


def fact(value: str) -> str:
    """What a run records of the value :func:`read` gave (or a remote host's shell printed)."""
    return FACTS.get(value.strip(), UNKNOWN)


def this_host() -> str:
    """The fact of this host's setting: what a local run records and the lab's status shows."""
    return fact(read())


def turn_off() -> tuple[bool, str]:
    """Turn autogroup off (the caller reads it on and records that first: a crash in between
    must not lose what to restore). Returns whether it is off now, and a line for the user. A
    kernel that refuses the write is said so, never an error: the runs record what holds."""
    try:
        AUTOGROUP.write_text("0\n")
    except OSError as exc:
        return False, (f"scheduler autogroup is on and could not be turned off ({exc}): runs "
                       f"record it, and a network probe may read low on a busy host")
    return True, ("scheduler autogroup turned off while the lab is up, so that a guest's QEMU "
                  "and the host-side peer of a probe share the CPUs thread by thread; `vbench "
                  "lab down` turns it on again")


def restore(original: str | None) -> str | None:
    """Turn autogroup on again if the lab turned it off and it still reads off; a value someone
    changed since is theirs and left alone. Returns a line of what was done, or None."""
    if original != "1":
        return None
    if read() != "0":
        return "scheduler autogroup was changed since `vbench lab up`: left as it is"
    try:
        AUTOGROUP.write_text("1\n")
    except OSError as exc:
        return f"scheduler autogroup could not be turned on again ({exc}): set it with " \
               f"`sysctl kernel.sched_autogroup_enabled=1`"
    return "turned scheduler autogroup on again"
