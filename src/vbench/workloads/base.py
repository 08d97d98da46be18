"""What every workload module declares: its scenario spec, the metrics it stores, its headline
metric, how long one repetition takes, the programs it needs in the guest, where it can run, and
how one repetition is executed (:meth:`WorkloadKind.run`).

A workload module (``workloads/fio.py``, ...) ends with ``WORKLOAD = Fio()``; :mod:`vbench.workloads`
registers it from its ``MODULES`` table. Everything else asks the registry: the scenario's
``Workload`` model is built from it, the budget and the live estimates call :meth:`estimate_s`, a
user's image is checked for :attr:`guest_tools`, another host refuses what is not :attr:`remote`,
the run loop calls :meth:`run`.

Workloads sit below the host, guest and run layers, so an executor is written against the small
protocols below (:class:`RunningUnit`, :class:`InGuest`, :class:`HostSide`): what a running
unit offers it. The run layer (:mod:`vbench.run.executors`) gives it an object that has them; a
test gives it a fake.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, ClassVar, Literal, Protocol

from vbench.core import policy
from vbench.core.metrics import CommandResult, Sample, is_known
from vbench.devices.base import ByteChannel, GuestSocket, MemoryControl, Strict

Direction = Literal["h2g", "g2h"]


def both_directions() -> list[Direction]:
    return ["h2g", "g2h"]


def direction_name(workload: str, direction: Direction) -> str:
    """The workload name one direction's samples are stored under: ``tcp-1`` -> ``tcp-1-h2g``."""
    return f"{workload}-{direction}"


def stored_names(workload: str) -> tuple[str, ...]:
    """Every workload name the samples of scenario workload ``workload`` may be stored under."""
    return (workload, *(direction_name(workload, d) for d in both_directions()))


def per_direction(workload: str, directions: list[Direction],
                  one: Callable[[str, Direction], tuple[list[Sample], str]]
                  ) -> tuple[list[Sample], str]:
    """Run ``one(name, direction)`` for each direction (``name``: :func:`direction_name`):
    all samples, and each raw output under a ``### name`` line."""
    samples: list[Sample] = []
    raws: list[str] = []
    for direction in directions:
        name = direction_name(workload, direction)
        got, raw = one(name, direction)
        samples += got
        raws.append(f"### {name}\n{raw}")
    return samples, "\n".join(raws)


# ---- what an executor gets from the run layer -------------------------------------------------

class CpuRate(Protocol):
    def rate(self) -> float | None:
        """CPU-seconds per second in the measured window; None when it was not measured."""


class ExitRates(Protocol):
    def per_second(self) -> dict[str, float]:
        """KVM exits of the guest's VM per second in the measured window, by exit metric
        (``exits_per_op``, ...: :data:`vbench.core.metrics.KVM_EXIT_METRICS`); only those read."""

    def absent(self) -> dict[str, str]:
        """Why each exit metric without a rate is absent; {} when none were to be read (TCG)."""


class InGuest(Protocol):
    """A running guest as its workloads use it."""

    @property
    def name(self) -> str: ...

    @property
    def boot_seconds(self) -> float | None:
        """Seconds from start until it answered over SSH (None: not known)."""

    def run(self, cmd: str, timeout: float, check: bool = False) -> CommandResult:
        """``cmd`` (a shell line) in the guest; with ``check`` a failure raises."""

    def check_alive(self) -> None:
        """Raise GuestError (with the console's tail) when the guest is no longer running: the
        reason for a failed command, rather than the command."""

    def qemu_cpu(self, delay: float, length: float) -> AbstractContextManager[CpuRate]:
        """Host CPU time of the guest's QEMU within [delay, delay + length] of the body."""

    def kvm_exits(self, delay: float, length: float) -> AbstractContextManager[ExitRates]:
        """KVM's exit counters of the guest's VM within [delay, delay + length] of the body; under
        TCG nothing is read (no exit rows, never zeros)."""

    def qemu_rss_mib(self) -> float | None:
        """Resident memory of the guest's QEMU on the host (None: not known)."""

    def test_ip(self) -> str:
        """The guest's address on the lab's test network (the NIC under test), checked lab-only."""

    def memory_control(self, full_mib: int, target_mib: int) -> MemoryControl | None:
        """The live operation of the device managing the guest's memory (balloon, virtio-mem)."""

    def byte_channel(self) -> ByteChannel | None:
        """The live byte channel a device of the guest gives (console)."""

    def guest_socket(self) -> GuestSocket | None:
        """The socket transport a device of the guest gives (vsock: its CID); None: none."""


class HostSide(Protocol):
    """The host side of the unit's lab: this host's lab namespace, or another host."""

    def peer_ip(self) -> str:
        """The host-side peer's address on the test network, checked lab-only."""

    def peer(self, argv: list[str], port: int) -> AbstractContextManager[object]:
        """A server (iperf3 -s) listening on ``port`` for the body's duration."""

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        """A short command (ping) on the host side; never raises for its exit status."""

    def run_confined(self, argv: list[str], wrap: list[str], timeout: float) -> CommandResult:
        """``argv`` sandboxed, able to write only the host baseline's scratch file (whose path
        is :attr:`RunningUnit.scratch`) and not to grow it; ``wrap`` (a time bound) goes outside."""


class RunningUnit(Protocol):
    """One unit running: a variant's guest (or the host baseline) and its lab's host side."""

    @property
    def variant(self) -> str: ...

    @property
    def facts(self) -> dict[str, Any]:
        """What the guest reported at boot (``disks``, ``fio_file``, ``fs_dir``, ``fresh_boot``)
        and what executors remember for the next unit on the same guest."""

    @property
    def scratch(self) -> str | None:
        """The host baseline's scratch file; None for a guest."""

    def guest(self, tool: str) -> InGuest:
        """The guest; ProbeError(``TOOL workloads need a guest``) for the host baseline."""

    def host(self) -> HostSide: ...


class WorkloadKind:
    """One tool vbench can run as a workload. Subclasses set the class attributes below."""

    tool: ClassVar[str]                   # the scenario key: ``workloads[i].<tool>``
    spec: ClassVar[type[Strict]]          # its scenario section
    metrics: ClassVar[tuple[str, ...]]    # every metric it stores (each in the metric catalogue)
    headline: ClassVar[str]               # the one metric live lines and summaries show
    guest_tools: ClassVar[tuple[str, ...]] = ()  # programs the guest must have
    remote: ClassVar[bool] = False        # runs on (or against) another host (``--connect qemu+ssh``)
    needs_device: ClassVar[str | None] = None   # a device kind the variants must have under test
    method: ClassVar[int] = policy.FIRST_METHOD  # raised when a change alters what its numbers mean

    def estimate_s(self, spec: Any, scn: Any) -> float:
        """Seconds one repetition takes (the tool's own time and its slack), for the budget, the
        plan and the live time-left estimate."""
        raise NotImplementedError

    def run(self, scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
        """Execute workload ``w`` of scenario ``scn`` once on ``unit``: ``(samples, raw
        output)``. Any failure raises a UserError (probe, command, guest): a failed repetition."""
        raise NotImplementedError

    def problems(self, spec: Any, scn: Any) -> list[str]:
        """What in ``spec`` cannot hold with the rest of scenario ``scn`` (its guest, ...), one
        line each starting with the spec's field name; none by default."""
        return []

    def share_bytes(self, w: Any, scn: Any) -> int:
        """Bytes workload ``w`` writes into a shared folder under test (device fs: a host
        directory), for the budget's host disk; none by default."""
        return 0

    def headline_of(self, spec: Any) -> str:
        """The headline metric of one workload of this kind (fio: bw for sequential jobs)."""
        return self.headline

    def validate_declaration(self) -> None:
        name = type(self).__name__
        for attr in ("tool", "spec", "metrics", "headline"):
            if not hasattr(self, attr):
                raise TypeError(f"workload {name} does not declare {attr}")
        unknown = [m for m in self.metrics if not is_known(m)]
        if unknown:
            raise TypeError(f"workload {self.tool}: metrics {unknown} are not in the metric "
                            f"catalogue (vbench.core.metrics.METRICS)")
        if self.headline not in self.metrics:
            raise TypeError(f"workload {self.tool}: headline {self.headline!r} is not one of its "
                            f"metrics")
        if type(self).run is WorkloadKind.run:
            raise TypeError(f"workload {self.tool} does not declare run (its executor)")
