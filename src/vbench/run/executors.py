"""Executing one workload once: the glue between a booted target and the workload's own executor.

Each workload executes itself (:meth:`vbench.workloads.base.WorkloadKind.run`, in its module),
written against the small protocols of :mod:`vbench.workloads.base`. This module gives it what
they ask for from a :class:`Target`: the guest (:class:`LiveGuest`: commands over SSH, QEMU's CPU,
memory and KVM exit counters on the host, the devices' live operations) and the lab's host side
(:class:`LabHostSide`: the host-side peer, short commands, the sandboxed host baseline).
:func:`execute` is the runner's executor seam.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vbench.core import procs
from vbench.core.errors import ProbeError, UserError
from vbench.core.metrics import CommandResult, Sample
from vbench.devices.base import ByteChannel, GuestSocket, MemoryControl
from vbench.host.kvmstat import KvmCounters, all_absent
from vbench.run.cpuwindow import CpuWindow, ExitWindow
from vbench.scenario.schema import Scenario, Workload
from vbench.workloads.base import CpuRate, ExitRates

if TYPE_CHECKING:  # pragma: no cover
    from vbench.guest.domain import Guest
    from vbench.host.lab import Lab


@dataclass
class Target:
    """Where a workload runs: a booted guest of a variant, or the host (baseline)."""

    variant: str
    guest: "Guest | None" = None         # None for the host baseline
    facts: dict = field(default_factory=dict)
    host_scratch: Path | None = None     # host baseline's backing file
    lab: "Lab | None" = None


def execute(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    """Workload ``w`` once on ``target``: ``(samples, raw output)``."""
    return w.kind.run(scn, w, TargetUnit(scn, target))


@dataclass
class TargetUnit:
    """A :class:`Target` as :class:`vbench.workloads.base.RunningUnit`."""

    scn: Scenario
    target: Target

    @property
    def variant(self) -> str:
        return self.target.variant

    @property
    def facts(self) -> dict[str, Any]:
        return self.target.facts

    @property
    def scratch(self) -> str | None:
        t = self.target
        return str(t.host_scratch) if t.guest is None and t.host_scratch is not None else None

    def guest(self, tool: str) -> "LiveGuest":
        """The guest a workload runs in (network, entropy, balloon, ... have no host variant)."""
        if self.target.guest is None:
            raise ProbeError(f"{tool} workloads need a guest")
        return LiveGuest(self.target.guest, self.target.facts)

    def host(self) -> "LabHostSide":
        return LabHostSide(self.scn, self.target)


@dataclass
class LiveGuest:
    """A running guest (:class:`vbench.guest.domain.Guest`, or a test's fake at the SSH seam) as
    :class:`vbench.workloads.base.InGuest`."""

    g: "Guest"
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.g.name

    @property
    def boot_seconds(self) -> float | None:
        return getattr(self.g, "boot_seconds", None)

    def run(self, cmd: str, timeout: float, check: bool = False) -> CommandResult:
        return self.g.ssh.run(cmd, timeout=timeout, check=check)

    def check_alive(self) -> None:
        self.g.check_alive()

    def qemu_cpu(self, delay: float, length: float) -> AbstractContextManager[CpuRate]:
        return CpuWindow(self.g.qemu_pid(), delay, length)

    def kvm_exits(self, delay: float, length: float) -> AbstractContextManager[ExitRates]:
        return ExitWindow(self._exit_reader(), delay, length)

    def _exit_reader(self) -> Callable[[], KvmCounters] | None:
        """What reads the guest's exit counters on its host; None under TCG (no VM to count:
        no rows), whatever debugfs holds. A guest without a known QEMU pid reads an absence."""
        accel = getattr(self.g, "accel", None)
        if getattr(accel, "name", None) != "kvm":
            return None
        pid = self.g.qemu_pid()
        if not pid:
            return lambda: all_absent("the guest's QEMU pid is not known on its host")
        host = self.g.lab.host

        def read() -> KvmCounters:
            try:
                return host.kvm_counters(pid)
            except UserError as exc:  # a broken session: said, not raised in a timer
                return all_absent(f"reading KVM's counters on the host failed: {exc}")
        return read

    def qemu_rss_mib(self) -> float | None:
        pid = self.g.qemu_pid()
        return procs.rss_mib(pid) if pid else None

    def test_ip(self) -> str:
        from vbench.host.netns import check_target

        if "test_ip" not in self.facts:
            self.facts["test_ip"] = self.g.test_nic_ip()
        check_target(self.facts["test_ip"])
        return self.facts["test_ip"]

    def memory_control(self, full_mib: int, target_mib: int) -> MemoryControl | None:
        return next((c for dev, spec in self._present()
                     if (c := dev.memory_control(spec, self.g, full_mib, target_mib)) is not None),
                    None)

    def byte_channel(self) -> ByteChannel | None:
        return next((c for dev, spec in self._present()
                     if (c := dev.byte_channel(spec, self.g, self.facts)) is not None), None)

    def guest_socket(self) -> GuestSocket | None:
        return next((s for dev, spec in self._present()
                     if (s := dev.guest_socket(spec, self.g, self.facts)) is not None), None)

    def _present(self) -> list:
        prof = getattr(self.g, "profile", None)
        return list(prof.present()) if prof is not None else []


@dataclass
class LabHostSide:
    """The host side of a target's lab (its namespace here, or another host) as
    :class:`vbench.workloads.base.HostSide`."""

    scn: Scenario
    target: Target

    def peer_ip(self) -> str:
        from vbench.host.netns import check_target
        from vbench.host.networks import TEST

        check_target(TEST.host_ip)
        return TEST.host_ip

    def peer(self, argv: list[str], port: int) -> AbstractContextManager[object]:
        return self._lab().host.peer(argv, port)

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        return self._lab().host.run(argv, timeout=timeout)

    def run_confined(self, argv: list[str], wrap: list[str], timeout: float) -> CommandResult:
        from vbench.host.sandbox import fsize_limited

        scratch = self.target.host_scratch
        assert scratch is not None
        # Root on the host with a scenario's options: confined to its scratch file, no network,
        # unable to grow the file past the size it was made with; on the host where the guests
        # run (another host: its own fio on its own storage).
        argv = fsize_limited(argv, self.scn.profile(self.scn.variants[0]).disk)
        return self._lab().host.run_confined(argv, scratch, wrap, timeout=timeout)

    def _lab(self) -> "Lab":
        """The lab whose host runs the host side (:mod:`vbench.host.hosts`)."""
        if self.target.lab is None:
            raise ProbeError(f"variant {self.target.variant}: a host-side peer or baseline needs "
                             f"the lab")
        return self.target.lab
