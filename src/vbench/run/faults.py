"""Fault injection for vbench's own tests (failpoints), off unless ``VBENCH_FAULTS`` is set.

``VBENCH_FAULTS="KIND@VARIANT@REP[,...]"`` injects real faults into real guests at a chosen unit,
so the integration tests can prove that a run survives them:

- ``stop-workload``  SIGSTOP fio/iperf3 in the guest 2 s into the unit (a hung workload)
- ``kill-sshd``      kill every sshd in the guest just before the unit
- ``panic``          crash the guest kernel (sysrq c) 2 s into the unit
- ``destroy``        destroy the domain from outside (a libvirt connection of its own, as
                     ``virsh destroy`` would) 2 s into the unit
- ``no-lease``       boot the variant with its management link down (it never gets a lease)
- ``boot-hang``      the variant's first boot attempt hangs in the initramfs (its kernel line
                     gets ``break=top``: the initramfs stops in its shell); the retry boots
- ``boot-hang-always`` every boot attempt of the variant hangs that way

REP is the 0-based repetition, or ``*`` for any. The faults go through a separate SSH
connection or a separate libvirt connection, exactly as something outside vbench would do it.

They enter a run at one seam only, :func:`install` in ``runner.run_scenario``: guest options for
the variants that boot broken, and the session's ``before_unit`` hook. No production module reads
this one; a fault that must run in the workload's own shell rides on the guest's SSH connection
for the next command of that unit (:class:`PrefixNextCommand`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

KINDS = ("stop-workload", "kill-sshd", "panic", "destroy", "no-lease", "boot-hang",
         "boot-hang-always")

# initramfs-tools: stop before anything else in the initramfs' emergency shell, which waits for
# input on the console that never comes. A real hang: the kernel booted, userspace never starts.
HANG_CMDLINE = "break=top"
MAX_ATTEMPTS = 6  # scenario.GuestSpec.boot_retries is at most 5


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
    from vbench.host import ssh as remote

    ssh = remote.Ssh.connect(guest.ip, guest.lab.netns, guest.host_key, guest.client_key,
                             guest.image.user, timeout=10, via=guest.lab.host.via)
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


class PrefixNextCommand:
    """Stands in for a guest's SSH connection for one unit: the next command (the unit's
    workload, run right after ``before_unit``) gets ``prefix`` in front of it, once; everything
    else goes to the real connection. ``cancel()`` puts the real connection back."""

    def __init__(self, guest: Any, prefix: str) -> None:
        self._guest, self._real, self._prefix = guest, guest.shell, prefix
        guest.shell = self

    def run(self, command: str, *args: Any, **kw: Any) -> Any:
        prefix, self._prefix = self._prefix, ""
        return self._real.run(prefix + command, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def cancel(self) -> None:
        if self._guest.shell is self:  # not replaced meanwhile (a reconnect after a failure)
            self._guest.shell = self._real


class _Both:
    def __init__(self, *parts: Any) -> None:
        self.parts = [p for p in parts if p is not None]

    def cancel(self) -> None:
        for p in self.parts:
            p.cancel()


def before_unit(guest, variant: str, rep: int) -> Any:
    """Inject the faults wanted for this unit; returns what to cancel after the unit."""
    if guest is None:
        return None
    if wanted("kill-sshd", variant, rep):
        _guest_cmd(guest, "pkill -KILL sshd")
    delayed = None
    if wanted("stop-workload", variant, rep):
        # Deterministic: the stopper runs in the same shell as the workload, so it cannot lose a
        # race against a second SSH connection on a slow TCG guest.
        return PrefixNextCommand(guest, STOPPER)
    elif wanted("panic", variant, rep):
        return PrefixNextCommand(guest, PANICKER)  # in the workload's own shell, like STOPPER
    elif wanted("destroy", variant, rep):
        delayed = lambda: _destroy_from_outside(guest.lab.uri, guest.name)  # noqa: E731
    if delayed is None:
        return None
    t = threading.Timer(2.0, delayed)
    t.daemon = True
    t.start()
    return t


def _destroy_from_outside(uri: str, name: str) -> None:
    """Destroy domain ``name`` over a libvirt connection of its own (another client, as a user's
    ``virsh destroy`` would be), opened through the same URI gate as every other connection. In a
    timer thread: whatever fails (the guest already gone) is the run's to notice, never a
    traceback of this thread."""
    from vbench.host import libvirtd

    with contextlib.suppress(Exception):
        conn = libvirtd.open_connection(uri)
        try:
            conn.lookupByName(name).destroy()
        finally:
            conn.close()


def install(variants: list[str], overrides: dict[str, dict]) -> Callable[..., Any] | None:
    """The one seam: add the guest options of faulty variants to ``overrides`` (variant -> Guest
    fields) and return the session's ``before_unit`` hook; None (nothing added) when
    ``VBENCH_FAULTS`` names no fault."""
    if not active():
        return None
    for v in variants:
        if wanted("no-lease", v):
            overrides.setdefault(v, {})["mgmt_link_down"] = True
        hangs = MAX_ATTEMPTS if wanted("boot-hang-always", v) else 1 if wanted("boot-hang", v) else 0
        if hangs:
            overrides.setdefault(v, {})["by_attempt"] = [{"extra_cmdline": HANG_CMDLINE}] * hangs
    return before_unit
