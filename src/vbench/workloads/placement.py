"""Where a network probe runs in the guest, relative to the interrupts of the NIC under test.

A guest with two or more vCPUs takes the NIC's interrupts on one vCPU, and the scheduler puts
the probe (iperf3) on that vCPU or on another one, differently from boot to boot. The two
layouts are two different measurements: measured on this host under TCG with a 2-vCPU guest,
virtio-net host-to-guest read 2,900-3,200 Mbit/s with iperf3 on the interrupts' vCPU and
4,600-4,800 on the other one (e1000 1,150 against 1,750; guest-to-host 2,400-2,800 against
4,200-4,600), and the free choice fell on either: a reading that jumps between two modes
measures the scheduler, not the device. ``placement: split`` (the default) fixes the layout:
every interrupt of the NIC under test on vCPU 0, the probe pinned to the last vCPU; ``free``
leaves both where the guest puts them.

The layout is set before each probe run and read back after it: something in the guest that
moves the interrupts (irqbalance) fails the repetition instead of measuring the other mode.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from vbench.core.errors import ProbeError, RemoteCommandError
from vbench.core.untrusted import labelled_lines
from vbench.workloads.base import InGuest
from vbench.workloads.common import one_line

Placement = Literal["split", "free"]
IRQ_CPU = 0          # the vCPU the NIC's interrupts are moved to
MIN_VCPUS = 2        # split needs a vCPU for the interrupts and another for the probe
MAX_IRQS = 64        # a NIC with more vectors than this is not one vbench's lab gives a guest
SCRIPT_REFUSED = 3  # the scripts' exit status when they print an error= line
_KEYS = frozenset({"ifname", "irqs", "irq_cpus", "probe_cpu", "was", "restored", "error"})
_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")   # a Linux interface name (IFNAMSIZ - 1)
_CPU_LIST = re.compile(r"^[0-9]{1,4}([-,][0-9]{1,4}){0,31}$")  # an smp_affinity_list value


# What each placement means, in the words of a report's context strip.
MEANING: dict[str, str] = {
    "split": f"NIC interrupts on vCPU {IRQ_CPU}, probe on the last vCPU",
    "free": "NIC interrupts and probe where the guest put them",
}


def problems(placement: Placement, vcpus: int) -> list[str]:
    """Why ``placement`` cannot hold in a guest of ``vcpus`` (scenario check); [] when it can."""
    if placement == "split" and vcpus < MIN_VCPUS:
        return [f"placement: split needs at least {MIN_VCPUS} vCPUs (one for the NIC's "
                f"interrupts, one for the probe); the guest has {vcpus}: set guest.vcpus to "
                f"{MIN_VCPUS} or placement: free"]
    return []


def _refuse(why: str) -> str:
    """A shell group printing ``error=WHY`` (``why``: text for inside double quotes, this
    module's own words with shell variables) and exiting with :data:`SCRIPT_REFUSED`."""
    return f'{{ echo "error={why}"; exit {SCRIPT_REFUSED}; }}'


def _irqs_sh(guest_ip: str, sysfs: str) -> str:
    """Shell lines setting ``$eth`` (the interface holding ``guest_ip``) and ``$irqs`` (its
    device's interrupt numbers: MSI/MSI-X vectors, else the legacy line)."""
    try:
        ip = str(ipaddress.IPv4Address(guest_ip))  # an address, never text for the shell
    except ValueError:
        raise ProbeError(f"probe placement: {one_line(guest_ip)[:40]!r} is not the guest's "
                         "IPv4 address on the test network") from None
    sysfs = shlex.quote(sysfs)
    return (f"eth=$(ip -o -4 addr show to {ip} | awk '{{print $2; exit}}')\n"
            "[ -n \"$eth\" ] || " + _refuse(f"no interface holds {ip}") + "\n"
            f"d=$(readlink -f {sysfs}\"/class/net/$eth/device\")\n"
            # a virtio NIC's device is virtioN; its PCI function (with the interrupts) is above
            "[ -e \"$d/irq\" ] || d=$(dirname \"$d\")\n"
            "irqs=$(ls \"$d/msi_irqs\" 2>/dev/null | sort -n)\n"
            "[ -n \"$irqs\" ] || irqs=$(cat \"$d/irq\" 2>/dev/null)\n"
            "[ -n \"$irqs\" ] && [ \"$irqs\" != 0 ] || "
            + _refuse("$eth has no interrupt in sysfs") + "\n")


def _report_sh(procfs: str) -> str:
    return ("echo \"ifname=$eth\"\necho \"irqs=$(echo $irqs | tr ' ' ,)\"\n"
            f"echo \"irq_cpus=$(for i in $irqs; do cat {shlex.quote(procfs)}/irq/$i/"
            "smp_affinity_list; done | sort -u | paste -sd, -)\"\n")


def set_script(guest_ip: str, sysfs: str = "/sys", procfs: str = "/proc") -> str:
    """A POSIX sh script (run as root in the guest) that moves every interrupt of the NIC holding
    ``guest_ip`` to vCPU :data:`IRQ_CPU` and prints ``key=value`` lines: ``ifname``, ``irqs``,
    ``irq_cpus`` (read back), ``was`` (each interrupt's vCPU list before, for
    :func:`restore_script`), ``probe_cpu`` (the last online vCPU), or ``error``."""
    return (_irqs_sh(guest_ip, sysfs)
            + "n=$(getconf _NPROCESSORS_ONLN)\n"
            f"echo \"was=$(for i in $irqs; do cat {shlex.quote(procfs)}/irq/$i/smp_affinity_list; "
            "done | paste -sd' ' -)\"\n"
            f"[ \"$n\" -ge {MIN_VCPUS} ] || " + _refuse("the guest has $n vCPU") + "\n"
            "for i in $irqs; do\n"
            f"  echo {IRQ_CPU} > {shlex.quote(procfs)}/irq/$i/smp_affinity_list 2>/dev/null || "
            + _refuse("interrupt $i of $eth cannot be moved (managed by the kernel?)")
            + "\ndone\n"
            + _report_sh(procfs) + "echo \"probe_cpu=$((n - 1))\"\n")


def check_script(guest_ip: str, sysfs: str = "/sys", procfs: str = "/proc") -> str:
    """A POSIX sh script printing where the NIC's interrupts are now (``irqs``, ``irq_cpus``)."""
    return _irqs_sh(guest_ip, sysfs) + _report_sh(procfs)


@dataclass(frozen=True)
class Placed:
    """The layout in force: the NIC's interface and interrupts, and the probe's vCPU."""

    ifname: str
    irqs: tuple[int, ...]
    probe_cpu: int
    was: tuple[str, ...] = ()   # each interrupt's vCPU list before the layout was set

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` pinned to the probe's vCPU (util-linux taskset, in every Debian guest)."""
        return ["taskset", "-c", str(self.probe_cpu), *argv]

    def describe(self) -> str:
        irqs = ",".join(map(str, self.irqs))
        return (f"{self.ifname} interrupts {irqs} on vCPU {IRQ_CPU}, probe on vCPU "
                f"{self.probe_cpu}")


def _int_list(value: str, what: str) -> tuple[int, ...]:
    parts = value.split(",")
    if not value or len(parts) > MAX_IRQS or not all(p.isdigit() and len(p) <= 5 for p in parts):
        raise ProbeError(f"probe placement: the guest gave {what} {one_line(value)[:80]!r}, not "
                         "a list of numbers: check the guest's /proc/irq")
    return tuple(int(p) for p in parts)


def parse_set(text: str, vcpus: int) -> Placed:
    """The :func:`set_script` output -> :class:`Placed`; ProbeError unless every interrupt is on
    vCPU :data:`IRQ_CPU` and the probe's vCPU is another one of the guest's ``vcpus``."""
    got = labelled_lines(text, _KEYS)
    if "error" in got:
        raise ProbeError(f"probe placement failed in the guest: {one_line(got['error'])[:160]}; "
                         "set the workload's placement: free to measure without it")
    ifname, irqs = _layout(got)
    cpu = got.get("probe_cpu", "")
    if not cpu.isdigit() or not IRQ_CPU < int(cpu) < vcpus:
        raise ProbeError(f"probe placement: the guest gave probe vCPU {one_line(cpu)[:20]!r}, "
                         f"not one of 1..{vcpus - 1}: check the guest's vCPUs")
    was = tuple(got.get("was", "").split(" "))
    if len(was) != len(irqs) or not all(_CPU_LIST.match(w) for w in was):
        raise ProbeError(f"probe placement: the guest gave the interrupts' earlier vCPUs as "
                         f"{one_line(got.get('was', ''))[:60]!r}, not one vCPU list per "
                         "interrupt: check the guest's /proc/irq")
    return Placed(ifname, irqs, int(cpu), was)


def _layout(got: dict[str, str]) -> tuple[str, tuple[int, ...]]:
    """The interface and interrupts a script named, all of them on vCPU :data:`IRQ_CPU`."""
    ifname = got.get("ifname", "")
    if not _IFNAME.match(ifname):
        raise ProbeError(f"probe placement: the guest named no interface "
                         f"({one_line(ifname)[:20]!r}): check the guest's address on the test "
                         "network")
    irqs = _int_list(got.get("irqs", ""), "interrupts")
    cpus = got.get("irq_cpus", "")
    if cpus != str(IRQ_CPU):
        raise ProbeError(f"probe placement: {one_line(ifname)[:20]}'s interrupts are on vCPUs "
                         f"{one_line(cpus)[:40]!r}, not {IRQ_CPU} only: something in the guest "
                         "moves them (irqbalance?); stop it, or set placement: free")
    return ifname, irqs


def check_held(text: str, placed: Placed) -> None:
    """The :func:`check_script` output after a run: ProbeError unless the same interrupts are
    still all on vCPU :data:`IRQ_CPU` (the run measured the layout it says)."""
    got = labelled_lines(text, _KEYS)
    if "error" in got:
        raise ProbeError(f"probe placement could not be read back: "
                         f"{one_line(got['error'])[:160]}")
    now = _layout(got)
    if now != (placed.ifname, placed.irqs):
        raise ProbeError(f"probe placement: the NIC's interrupts changed during the run "
                         f"({placed.describe()}; now {now[0]} {now[1]}): rerun")


def restore_script(placed: Placed, procfs: str = "/proc") -> str:
    """A POSIX sh script giving each interrupt of ``placed`` back the vCPU list it had
    (``placed.was``, checked when read) and printing ``restored=yes``, or ``error``."""
    lines = [f"echo {w} > {shlex.quote(procfs)}/irq/{n}/smp_affinity_list 2>/dev/null || "
             + _refuse(f"interrupt {n} cannot be given back vCPUs {w}")
             for n, w in zip(placed.irqs, placed.was)]
    return "\n".join(lines + ["echo restored=yes\n"])


def check_restored(text: str) -> None:
    got = labelled_lines(text, _KEYS)
    if got.get("restored") != "yes":
        why = one_line(got.get("error", "no answer"))[:160]
        raise ProbeError(f"probe placement: the NIC's interrupts could not be given back their "
                         f"vCPUs ({why}): the next workload in this guest would measure another "
                         "layout; rerun")


PLACE_TIMEOUT_S = 30.0


def _run(g: InGuest, script: str, what: str) -> str:
    """``script``'s output in guest ``g``; a command that did not get to say anything (the guest
    gone, SSH broken, a timeout) is that failure, not a placement answer."""
    res = g.run(script, timeout=PLACE_TIMEOUT_S)
    if res.timed_out:
        raise ProbeError(f"probe placement ({what}) did not finish within "
                         f"{PLACE_TIMEOUT_S:.0f} s in {g.name}")
    if res.exit_status not in (0, SCRIPT_REFUSED):
        g.check_alive()
        raise RemoteCommandError(res)
    return res.stdout


@contextmanager
def placed_run(g: InGuest, guest_ip: str, placement: Placement,
               vcpus: int) -> Iterator[Placed | None]:
    """The layout set in guest ``g`` for the body (None for ``free``: nothing is touched), then
    read back (ProbeError if it moved: the body measured another layout) and undone, so that the
    guest's other workloads run in the guest's own layout. When the body fails, the layout is
    undone as far as the guest lets and the body's error is the one raised."""
    if placement == "free":
        yield None
        return
    placed = parse_set(_run(g, set_script(guest_ip), "set"), vcpus)
    try:
        yield placed
    except Exception:  # an interrupt (Ctrl-C) goes straight to the run's cleanup: guest destroyed
        try:
            _run(g, restore_script(placed), "undo")
        except Exception:  # noqa: BLE001 - the body's failure is the one to report
            pass
        raise
    text = _run(g, check_script(guest_ip) + restore_script(placed), "read back")
    check_restored(text)
    check_held(text, placed)
