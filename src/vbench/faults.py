"""Fault injection for vbench's own tests (failpoints), off unless ``VBENCH_FAULTS`` is set.

``VBENCH_FAULTS="KIND@VARIANT@REP[,...]"`` injects real faults into real guests at a chosen unit,
so the integration tests can prove that a run survives them:

- ``stop-workload``  SIGSTOP fio/iperf3 in the guest 2 s into the unit (a hung workload)
- ``kill-sshd``      kill every sshd in the guest just before the unit
- ``panic``          crash the guest kernel (sysrq c) 2 s into the unit
- ``destroy``        destroy the domain from outside (``virsh destroy``) 2 s into the unit
- ``no-lease``       boot the variant with its management link down (it never gets a lease)

REP is the 0-based repetition, or ``*`` for any. The faults go through a separate SSH
connection or a separate virsh process, exactly as something outside vbench would do it.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass

KINDS = ("stop-workload", "kill-sshd", "panic", "destroy", "no-lease")


@dataclass(frozen=True)
class Fault:
    kind: str
    variant: str
    rep: str

    def matches(self, variant: str, rep: int | None) -> bool:
        return self.variant == variant and (self.rep == "*" or rep is None or self.rep == str(rep))


def active() -> list[Fault]:
    out = []
    for item in filter(None, os.environ.get("VBENCH_FAULTS", "").split(",")):
        parts = item.strip().split("@")
        if len(parts) == 3 and parts[0] in KINDS:
            out.append(Fault(*parts))
    return out


def wanted(kind: str, variant: str, rep: int | None = None) -> bool:
    return any(f.kind == kind and f.matches(variant, rep) for f in active())


def _guest_cmd(guest, command: str) -> None:
    from . import remote

    ssh = remote.Ssh.connect(guest.ip, guest.lab.netns, guest.image.host_key_pub, guest.client_key,
                             guest.image.user, timeout=10)
    try:
        ssh.run(command, timeout=40, check=False)
    except Exception:
        pass  # a panic or sshd kill tears the connection down: that is the point
    finally:
        ssh.close()


STOPPER = ("( for i in $(seq 120); do pkill -STOP -x fio && break; pkill -STOP -x iperf3 && break; "
           "sleep 0.25; done ) >/dev/null 2>&1 & ")


PANICKER = ("( sleep 2; echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger ) "
            ">/dev/null 2>&1 & ")


def wrap(guest, command: str) -> str:
    """The workload command with any pending in-guest fault in front of it (used once)."""
    prefix = getattr(guest, "fault_prefix", "")
    if prefix:
        guest.fault_prefix = ""
    return prefix + command


def before_unit(guest, variant: str, rep: int) -> threading.Timer | None:
    """Inject the faults wanted for this unit; returns a timer to cancel after the unit."""
    if guest is None:
        return None
    if wanted("kill-sshd", variant, rep):
        _guest_cmd(guest, "pkill -KILL sshd")
    delayed = None
    if wanted("stop-workload", variant, rep):
        # Deterministic: the stopper runs in the same shell as the workload (see wrap()), so it
        # cannot lose a race against a second SSH connection on a slow TCG guest.
        guest.fault_prefix = STOPPER
    elif wanted("panic", variant, rep):
        guest.fault_prefix = PANICKER  # in the workload's own shell, like STOPPER
    elif wanted("destroy", variant, rep):
        delayed = lambda: subprocess.run(["virsh", "-c", guest.lab.uri, "destroy", guest.name],  # noqa: E731
                                         capture_output=True, timeout=30)
    if delayed is None:
        return None
    t = threading.Timer(2.0, delayed)
    t.daemon = True
    t.start()
    return t
