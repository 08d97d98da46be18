"""How far a guest's boot got, read from its serial console and the host's lease table.

vbench's image writes a marker line to the kernel log for each stage the host waits on
(``vbench-boot: userspace``, ``vbench-boot: network eth0 10.254.0.12/24``, ``vbench-boot: sshd``:
see ``BOOT_MARK`` below); the kernel line has no ``quiet``, so the kernel log and the
markers reach the serial console, a file vbench keeps. A user's own image has no markers: for it
the usual lines of a Linux boot stand in (``systemd[1]:``, ``Welcome to``, ``cloud-init``).

No libvirt and no I/O of its own: :func:`read` turns console text into a :class:`BootProgress`,
:func:`explain` says where a boot that did not finish stopped, in the words of one of
:data:`REASONS`, and :class:`BootWatch` applies the stall rule (:func:`stalled`) to a console read
now and then while vbench waits for a guest.
"""

from __future__ import annotations

import os
from pathlib import Path

import re
import time
from dataclasses import dataclass
from typing import Callable

MARK = "vbench-boot: "
PANIC_MARK = "Kernel panic - not syncing"

# The stages, in boot order; a failed boot is reported at the furthest one it reached.
STAGES = ("none", "console", "kernel", "userspace", "network", "sshd")

REASONS = {
    "none": "no console output at all",
    "console": "console output, but the kernel did not start",
    "kernel": "kernel booted, userspace did not start",
    "userspace": "userspace up, no DHCP request seen",
    "network": "lease given, no SSH",
    "sshd": "sshd started, but SSH did not answer",
}

_KERNEL = re.compile(r"Linux version \d|^\[\s*\d+\.\d+\] ", re.M)
# A shell's queries and colours on the serial line (busybox ash asks for the cursor: ESC [6n)
_TERMINAL_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_INITRAMFS = re.compile(r"Run /init as init process|Loading, please wait|\(initramfs\)")
_INITRAMFS_SHELL = re.compile(r"Dropping to a shell|\(initramfs\)")
# The real init (not the initramfs' /init) is running: vbench's marker, or what systemd and
# cloud-init print on a user's image.
_USERSPACE = re.compile(MARK + r"userspace|systemd\[1\]: |Welcome to .*!|cloud-init\[\d+\]"
                        r"|Run /sbin/init as init process|login: $", re.M)
_NETWORK = re.compile(MARK + r"network(?: (\S+) (\S+))?")
_SSHD = re.compile(MARK + r"sshd|Started (?:ssh|sshd)\.service|OpenBSD Secure Shell server")
# The headline the kernel prints above a backtrace when something in the guest went wrong (a soft
# lockup, an RCU stall, a task blocked for minutes, an oops, a WARN): a boot that fails after one
# says so, since the console's last lines are then the middle of a backtrace.
_KERNEL_WARNING = re.compile(r"(?:BUG: |Oops: |WARNING: CPU: |general protection "
                             r"fault|rcu: INFO: |INFO: task \S+ blocked for more than )")

# A kernel that can no longer be trusted to run anything: an oops, a BUG (but a soft lockup's),
# or a soft lockup held for WEDGED_LOCKUP_S or more (a short one can be a starved vCPU under TCG).
_FATAL = re.compile(r"(?:BUG: (?!soft lockup|workqueue lockup)|Oops: |kernel BUG at |general "
                    r"protection fault)")
_LOCKUP = re.compile(r"BUG: soft lockup - CPU#\d+ stuck for (\d+)s!")
WEDGED_LOCKUP_S = 120


@dataclass(frozen=True)
class BootProgress:
    """What the console shows of one boot."""

    output: bool = False       # any console output at all
    kernel: bool = False       # the kernel started (its log reached the console)
    initramfs: bool = False    # the initramfs ran
    initramfs_shell: bool = False  # ... and dropped to its emergency shell
    userspace: bool = False    # the real init started
    network: str = ""          # the guest has an address ("eth0 10.254.0.12/24"), "" if not
    sshd: bool = False         # sshd accepts connections
    panic: str = ""            # the kernel's panic line, "" if none
    kernel_warning: str = ""   # the first warning headline the kernel printed, "" if none
    last_line: str = ""        # the last non-empty console line

    @property
    def stage(self) -> str:
        """The furthest stage of :data:`STAGES` this boot reached."""
        for name, reached in (("sshd", self.sshd), ("network", bool(self.network)),
                              ("userspace", self.userspace), ("kernel", self.kernel),
                              ("console", self.output)):
            if reached:
                return name
        return "none"


def read(console: str) -> BootProgress:
    """The progress a boot's console text shows (the whole console since power-on)."""
    text = _TERMINAL_CONTROL.sub("", console.replace("\r", ""))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    net = _NETWORK.search(text)
    panic = next((ln.strip() for ln in lines if PANIC_MARK in ln), "")
    warning = next((ln.strip() for ln in lines if _KERNEL_WARNING.search(ln)), "")
    return BootProgress(
        output=bool(text.strip()),
        kernel=bool(_KERNEL.search(text)),
        initramfs=bool(_INITRAMFS.search(text)),
        initramfs_shell=bool(_INITRAMFS_SHELL.search(text)),
        userspace=bool(_USERSPACE.search(text)),
        network=(" ".join(g for g in net.groups() if g) or "up") if net else "",
        sshd=bool(_SSHD.search(text)),
        panic=panic,
        kernel_warning=warning[:200],
        last_line=lines[-1].strip()[:200] if lines else "",
    )


def dhcp_requested(dnsmasq_log: str, mac: str) -> bool:
    """Whether dnsmasq's log shows a DHCP request from ``mac``
    (``dnsmasq-dhcp[7]: DHCPDISCOVER(vbmgmt0) 52:54:00:12:34:56``)."""
    pat = rf"DHCP(?:DISCOVER|REQUEST)\([^)]*\)(?: \S+)? {re.escape(mac)}\b"
    return re.search(pat, dnsmasq_log, re.I) is not None


@dataclass(frozen=True)
class Diagnosis:
    stage: str     # one of STAGES: how far the boot got (host facts included)
    reason: str    # one line, starting with REASONS[stage] (or "kernel panicked")

    def __str__(self) -> str:
        return self.reason


def explain(console: str, lease: str | None = None, dhcp_seen: bool | None = None) -> Diagnosis:
    """Where a boot that did not reach SSH stopped.

    ``lease``: the address the lab's DHCP server gave the guest's management NIC (libvirt's
    lease table), None if it gave none; ``dhcp_seen``: whether the DHCP server's log shows a
    request from that NIC (None when its log is not available).

    The lease table decides the network stage: without a lease on the management NIC, a guest
    whose console says it has an address (another NIC) and sshd is still stuck at 'userspace'.
    """
    p = read(console)
    stage = p.stage
    if lease and STAGES.index(stage) < STAGES.index("network"):
        stage = "network"  # the host gave a lease: the guest got that far, whatever it printed
    guest_says = ""
    if not lease and STAGES.index(stage) > STAGES.index("userspace"):
        stage = "userspace"  # ... and without one, no further than userspace
        said = [f"network {p.network}"] if p.network else []
        said += ["sshd started"] if p.sshd else []
        guest_says = f" (the guest reports {', '.join(said)})"
    if p.panic:
        return Diagnosis(stage, f"kernel panicked at stage '{stage}': {p.panic}")
    reason = REASONS[stage]
    if stage == "kernel":
        if p.initramfs_shell:
            reason += " (the initramfs dropped to its emergency shell)"
        elif p.initramfs:
            reason += " (stopped in the initramfs)"
    elif stage == "userspace" and dhcp_seen:
        reason = "userspace up, DHCP requested but no lease given" + guest_says
    elif stage == "userspace" and dhcp_seen is None:
        reason = ("userspace up, no DHCP lease (no DHCP server log to tell whether it asked)"
                  + guest_says)
    elif stage == "userspace":
        reason += guest_says
    elif stage == "network":
        where = f" ({lease})" if lease else (f" ({p.network})" if p.network not in ("", "up") else "")
        reason += where
    if p.kernel_warning:
        reason += f"; the kernel reported: {p.kernel_warning!r}"
    if stage != "none" and p.last_line and p.last_line != p.kernel_warning:
        reason += f"; last console line: {p.last_line!r}"
    return Diagnosis(stage, reason)


def gone(qemu_log: str, console: str, unknown: str) -> str:
    """Why a domain is gone, as "(how it ended)" and "; its kernel reported: '...'": libvirt's
    last word on its QEMU (vbench.core.qemulog.ending; ``unknown`` when the log says nothing)
    and the first warning or panic line on its console (e.g. the nested lab's L1 crashing in
    KVM's vCPU thread under TCG's emulated SVM)."""
    from vbench.core import qemulog

    seen = read(console)
    said = seen.kernel_warning or seen.panic
    return (f"({qemulog.ending(qemu_log, console) or unknown})"
            + (f"; its kernel reported: {said!r}" if said else ""))


def wedged(console: str) -> str:
    """The first console line saying the kernel is no longer sound (:data:`_FATAL`, or a soft
    lockup of :data:`WEDGED_LOCKUP_S` or more), "" if none. The nested lab stops on one in its
    hypervisor guest: a wedged L1 runs nothing more, and an inner run would wait for hours."""
    for line in _TERMINAL_CONTROL.sub("", console).splitlines():
        lockup = _LOCKUP.search(line)
        if _FATAL.search(line) or (lockup and int(lockup.group(1)) >= WEDGED_LOCKUP_S):
            return line.strip()[:200]
    return ""


def stalled(progress: BootProgress, quiet_s: float, budget_s: float, own_boot: bool = False) -> bool:
    """Whether a boot counts as hung: its console has not grown for longer than ``budget_s``
    before userspace started (after that, a healthy guest may print nothing for a long time).

    A user's own image (``own_boot``) may sit silently in firmware or a boot menu: it counts only
    once its kernel has started."""
    if progress.userspace or progress.panic:
        return False
    if own_boot and not progress.kernel:
        return False
    return quiet_s > budget_s


class BootWatch:
    """The stall rule over time, for one boot: ``check(read_console)`` reads the console at most
    every ``every_s`` seconds and returns for how long it has not grown when that counts as a
    hung boot, else None. ``clock`` is injectable for tests."""

    def __init__(self, budget_s: float, own_boot: bool = False, every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s, self.own_boot, self.every_s, self.clock = budget_s, own_boot, every_s, clock
        self.seen, self.grew, self.checked = "", clock(), float("-inf")
        self.progress = BootProgress()

    def check(self, read_console: Callable[[], str]) -> float | None:
        now = self.clock()
        if self.progress.userspace or now - self.checked < self.every_s:
            return None  # the rule is off once userspace runs: no more reads (a remote console)
        self.checked = now
        text = read_console()
        if text != self.seen:
            self.seen, self.grew, self.progress = text, now, read(text)
        quiet = now - self.grew
        return quiet if stalled(self.progress, quiet, self.budget_s, self.own_boot) else None


# sshd is up, the management NIC never sent a DHCP request: waiting longer does not bring a lease
NO_DHCP_GRACE_S = 30.0


class DhcpSilence:
    """A guest whose sshd runs but whose management NIC never asked for an address. In vbench's
    image the DHCP client starts before sshd (ssh.service is after network.target), so a lease
    that has not been requested by then will not come by waiting to the boot timeout (240 s by
    default): ``check`` returns how long sshd has been up once that exceeds ``grace_s`` and the
    lab's DHCP log says no request came (``dhcp_seen()`` False). When the log cannot tell (None: a
    user's libvirt, another host) it never stops a wait. ``clock`` is injectable for tests."""

    def __init__(self, grace_s: float = NO_DHCP_GRACE_S, every_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s, self.every_s, self.clock = grace_s, every_s, clock
        self.sshd_at: float | None = None
        self.checked = float("-inf")

    def check(self, read_console: Callable[[], str],
              dhcp_seen: Callable[[], bool | None]) -> float | None:
        now = self.clock()
        if now - self.checked < self.every_s:
            return None
        self.checked = now
        if self.sshd_at is None:
            if not read(read_console()).sshd:
                return None
            self.sshd_at = now
        up = now - self.sshd_at
        return up if up > self.grace_s and dhcp_seen() is False else None


def dhcp_requested_in(log: Path, mac: str) -> bool | None:
    """:func:`dhcp_requested` over the last 4 MiB of a dnsmasq log file; None if unreadable."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - (4 << 20)))
            return dhcp_requested(fh.read().decode(errors="replace"), mac)
    except OSError:
        return None


# The image's side of the boot markers (vbench.host.images writes these into every image; this
# module reads what they print): one line in the kernel log, and so on the
# serial console, for each stage the host waits on, so that a guest that stops says where.
BOOT_MARK = """#!/bin/sh
# vbench: write the boot marker "vbench-boot: STAGE [detail]" to the kernel log (it reaches the
# serial console, which the host keeps). "network" waits until an interface has an IPv4 address.
stage="$1"; detail=""
if [ "$stage" = network ]; then
  i=0
  while [ "$i" -lt 2400 ]; do
    line=$(ip -4 -o addr show scope global 2>/dev/null | head -n 1)
    if [ -n "$line" ]; then set -- $line; detail="$2 $4"; break; fi
    i=$((i + 1)); sleep 0.25
  done
  [ -n "$detail" ] || exit 1
fi
echo "<5>@MARK@$stage $detail" > /dev/kmsg
""".replace("@MARK@", MARK)  # one home for the marker: read below, written by this script

BOOT_MARK_UNITS = {
    # As early as systemd runs units: userspace (the real init, past the initramfs) has started.
    "userspace": ("userspace started", "DefaultDependencies=no\nBefore=sysinit.target\n",
                  "oneshot", "sysinit.target"),
    # DHCP gave an address (waits for it in the background, without holding the boot up).
    "network": ("network up", "After=systemd-networkd.service\n", "simple", "multi-user.target"),
    # ssh.service is Type=notify: after it, sshd accepts connections.
    "sshd": ("sshd accepting connections", "Requires=ssh.service\nAfter=ssh.service\n", "oneshot",
             "multi-user.target"),
}


def boot_mark_unit(stage: str) -> str:
    what, deps, kind, wanted_by = BOOT_MARK_UNITS[stage]
    return (f"[Unit]\nDescription=vbench boot marker: {what}\n{deps}\n[Service]\nType={kind}\n"
            f"ExecStart=/usr/local/sbin/vbench-boot-mark {stage}\n\n[Install]\n"
            f"WantedBy={wanted_by}\n")
