"""libvirt's log of a guest's QEMU: its stderr and libvirt's own lines about the domain.

The one home of where that log lives and of what its last lines say about how a guest ended.
Pure text functions plus :func:`read_tail`, which reads it through the host interface (argv
only, never a shell), so it works for the lab, a user's libvirtd and another host alike.
"""

from __future__ import annotations

import re
from typing import Any

# where libvirt (the lab's own libvirtd too) keeps the log of guest NAME's QEMU
QEMU_LOG = "/var/log/libvirt/qemu/{name}.log"
TAIL_BYTES = 65536

_SHUTOFF = re.compile(r"shutting down, reason=([a-z-]+)")
_SIGNAL = re.compile(r"terminating on signal (\d+) from pid (\d+) \(([^)]*)\)")
_POWER_OFF = re.compile(r"reboot: Power down|System halted")
_RESTART = re.compile(r"reboot: Restarting system")

# libvirt's shut-off reasons (virDomainShutoffReason, as its log spells them), in plain words
ENDINGS = {
    "shutdown": "the guest stopped itself",
    "destroyed": "a libvirt client destroyed it",
    "crashed": "libvirt saw it crash (a kernel panic via pvpanic, or QEMU itself)",
    "failed": "QEMU failed",
    "daemon": "libvirtd stopped it",
    "migrated": "it was migrated away",
    "saved": "it was saved",
    "unknown": "libvirt does not know why",
}


def ending(qemu_log: str, console: str) -> str:
    """How a domain ended, in one phrase, from the end of its QEMU log and of its console; ''
    when the log says nothing (not readable, or no shut-off line yet).

    vbench's domains have ``on_reboot`` = destroy, so a guest reset (a reboot, or a triple fault,
    which leaves nothing on the console) ends the domain with libvirt's reason ``shutdown`` just
    as a power-off does; the console tells them apart when the guest had time to say so."""
    reasons = _SHUTOFF.findall(qemu_log)
    if not reasons:
        return ""
    reason = reasons[-1]
    words = ENDINGS.get(reason, f"reason {reason!r}")
    if reason == "shutdown":
        if _POWER_OFF.search(console):
            words += ": it powered off (its console says so)"
        elif _RESTART.search(console):
            words += ": it rebooted (its console says so; a reboot ends vbench's domains)"
        else:
            words += (": it reset or powered off without a word on its console (a reset, e.g. "
                      "a triple fault, ends vbench's domains: on_reboot is destroy)")
    sig = _SIGNAL.findall(qemu_log)
    if sig:
        num, pid, prog = sig[-1]
        words += f"; QEMU ended on signal {num} from {prog.rsplit('/', 1)[-1]} (pid {pid})"
    return f"libvirt: shutting down, reason={reason}: {words}"


def read_tail(host: Any, name: str) -> str:
    """The last :data:`TAIL_BYTES` of guest ``name``'s QEMU log on ``host`` ('' if unreadable)."""
    res = host.run(["tail", "-c", str(TAIL_BYTES), QEMU_LOG.format(name=name)], timeout=30)
    return res.stdout if res.ok else ""
