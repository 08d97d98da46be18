"""One host interface for where guests run: the local lab, a user's own libvirtd, another host.

A :class:`Host` is what the rest of vbench asks about the machine whose libvirt runs the guests:
its facts (stored with every run), the accelerator, the guest image placed where that libvirt
reads it, guest directories (path, console tail, removal), scratch files and confined commands
for the host baseline, host-side peers and short commands (iperf3 -s, ping), the SSH jump to its
guests and QEMU's pid. Three kinds:

- :class:`LocalLab` (``lab``): vbench's own libvirtd in the ``vbench`` network namespace;
- :class:`OwnLibvirtd` (``libvirtd``): a user's libvirt on this machine (``--connect
  qemu:///system`` and the like): the same as the lab but without a namespace or our dnsmasq;
- :class:`OtherHost` (``remote``): another host over its pinned SSH session
  (:class:`vbench.host.remote.RemoteHost`, ``--connect qemu+ssh://``).

``host.lab.Lab`` carries its host (``lab.host``); callers use ``lab.host.<op>`` and never ask
which kind it is. Only the guest layer keys on :attr:`Host.kind`, through one registry
(``vbench.guest.domain.GUEST_CLASSES``), since the host layer may not import the guest layer.
"""

from __future__ import annotations

import os
import platform
import shutil
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from vbench.core import paths, procs
from vbench.core.errors import LabError
from vbench.core.metrics import CommandResult

if TYPE_CHECKING:  # pragma: no cover
    from vbench.host.accel import Accelerator
    from vbench.host.kvmstat import KvmCounters
    from vbench.host.lab import LabState
    from vbench.host.remote import RemoteHost
    from vbench.scenario.schema import Scenario


class Host(ABC):
    """Where guests run, as the runner, executors and guests see it."""

    kind: ClassVar[str]   # "lab", "libvirtd" or "remote": what the guest-class registry keys on
    uri: str              # the libvirt URI vbench opens
    netns: str | None     # the network namespace guests' networks live in (None: this one)

    @classmethod
    @abstractmethod
    def refuse_unsupported(cls, scn: "Scenario", ab: bool = False) -> None:
        """Refuse, before anything is opened or boots, what this kind of host cannot run
        (one line, LabError)."""

    @property
    def via(self) -> Any:
        """The session SSH to guests goes through (a jump: ``.jump(addr, port, timeout)``), or
        None: straight from here (in :attr:`netns`)."""
        return None

    @abstractmethod
    def facts(self) -> dict:
        """The environment facts stored with every run (``results.record.Environment``)."""

    @abstractmethod
    def accelerator(self, kernel: Path | None, override: str | None = None) -> "Accelerator":
        """The accelerator guests get: forced (``--accel``/VBENCH_ACCEL), else decided here."""

    @abstractmethod
    def place_image(self, img: Any, say: Callable[[str], None]) -> Any:
        """The guest image as this host's libvirt reads it (uploaded once when elsewhere)."""

    def dhcp_seen(self, mac: str, network: str) -> bool | None:
        """Whether the lab's DHCP server logged a request from ``mac``; None: cannot tell."""
        return None

    # -- guest directories
    @abstractmethod
    def guest_dir(self, name: str) -> Path:
        """The directory of guest ``name``'s overlay, scratch disk and console, on this host."""

    @abstractmethod
    def read_tail(self, path: Path | PurePosixPath, size: int) -> bytes:
        """The last ``size`` bytes of a file in a guest directory (b"" when unreadable)."""

    @abstractmethod
    def remove_dir(self, path: Path | PurePosixPath) -> None:
        """Remove a guest (or baseline) directory on this host; never a path elsewhere."""

    @abstractmethod
    def qemu_pid(self, name: str) -> int | None:
        """The pid of guest ``name``'s QEMU when vbench can sample its CPU time, else None."""

    @abstractmethod
    def kvm_counters(self, pid: int) -> "KvmCounters":
        """KVM's exit counters of QEMU ``pid``'s VM (:mod:`vbench.host.kvmstat`), read on this
        host; each counter it cannot read is absent with its reason."""

    # -- the host baseline
    @abstractmethod
    def baseline_scratch(self, run_id: str, size_gib: float, mode: str) -> Path:
        """A fresh, claimed directory with the baseline's raw scratch file; returns the file
        (remove its directory with :meth:`remove_dir`)."""

    @abstractmethod
    def run_confined(self, argv: list[str], writable: Path | PurePosixPath, wrap: list[str],
                     timeout: float) -> CommandResult:
        """``wrap + argv`` as root on the host under bubblewrap, writing only ``writable``;
        RemoteCommandError (with the result) when it fails."""

    # -- host-side peers and commands
    @abstractmethod
    def peer(self, argv: list[str], port: int) -> AbstractContextManager[Any]:
        """A host-side server (iperf3 -s) on the lab's networks, listening on ``port`` once
        entered and stopped on exit."""

    @abstractmethod
    def run(self, argv: list[str], timeout: float) -> CommandResult:
        """A short host-side command on the lab's networks (ping); never raises on failure."""

    def close(self) -> None:
        """Release what the host holds (a session); nothing for this machine."""


# ---- this machine ------------------------------------------------------------------------------

class LocalLab(Host):
    """vbench's own lab on this machine: its libvirtd in the namespace ``netns``."""

    kind = "lab"

    def __init__(self, uri: str, netns: str | None, state: "LabState | None" = None) -> None:
        self.uri, self.netns, self.state = uri, netns, state

    @classmethod
    def refuse_unsupported(cls, scn: "Scenario", ab: bool = False) -> None:
        require_host_devices(scn)  # everything runs here; only devices this machine lacks do not

    def facts(self) -> dict:
        return local_facts(self.uri)

    def accelerator(self, kernel: Path | None, override: str | None = None) -> "Accelerator":
        from vbench.host.accel import local_accelerator

        return local_accelerator(self.uri, kernel, override, self.state)

    def place_image(self, img: Any, say: Callable[[str], None]) -> Any:
        return img  # libvirt here reads the cached image where it is

    def dhcp_seen(self, mac: str, network: str) -> bool | None:
        from vbench.host.bootlog import dhcp_requested_in

        if self.netns is None:  # a lab record without a namespace: not our dnsmasq
            return None
        return dhcp_requested_in(dhcp_log(network), mac)

    def guest_dir(self, name: str) -> Path:
        return paths.guests_dir() / name

    def read_tail(self, path: Path | PurePosixPath, size: int) -> bytes:
        from vbench.core.files import read_tail

        return read_tail(Path(path), size)

    def remove_dir(self, path: Path | PurePosixPath) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def qemu_pid(self, name: str) -> int | None:
        from vbench.host.libvirtd import qemu_pid_by_name

        pid = procs.read_pidfile(Path("/run/libvirt/qemu") / f"{name}.pid")
        # A user's libvirtd (--connect) may keep its runtime files elsewhere: find the QEMU
        # process by the guest name libvirt passes it (vbench's names are unique per run).
        return pid or qemu_pid_by_name(name)

    def kvm_counters(self, pid: int) -> "KvmCounters":
        from vbench.host import kvmstat

        # Not through run(): `ip netns exec` mounts a fresh /sys for the namespace, without the
        # host's debugfs under it. The counters are the kernel's, the same from any namespace.
        res = procs.run(kvmstat.stats_argv(pid), timeout=kvmstat.READ_TIMEOUT_S, check=False)
        return kvmstat.reading(res, pid)

    def baseline_scratch(self, run_id: str, size_gib: float, mode: str) -> Path:
        from vbench.devices.disk import make_scratch
        from vbench.host.libvirtd import claim_dir

        d = paths.guests_dir() / f"vbench-host-{run_id}"
        shutil.rmtree(d, ignore_errors=True)  # a leftover of a killed run being resumed: the
        d.mkdir(parents=True)                 # scratch file is then created anew, exclusively
        try:
            claim_dir(d)
            f = d / "scratch.raw"
            make_scratch(f, size_gib, mode)
        except BaseException:  # a half-written scratch file (full disk, Ctrl-C) is not kept
            shutil.rmtree(d, ignore_errors=True)
            raise
        return f

    def run_confined(self, argv: list[str], writable: Path | PurePosixPath, wrap: list[str],
                     timeout: float) -> CommandResult:
        from vbench.core.errors import RemoteCommandError
        from vbench.host.sandbox import confine

        res = procs.run(wrap + confine(argv, Path(writable)), timeout=timeout, check=False)
        if not res.ok:
            raise RemoteCommandError(res)
        return res

    def peer(self, argv: list[str], port: int) -> AbstractContextManager[Any]:
        from vbench.host.peer import HostPeer

        return HostPeer(self.netns, argv, port)

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        from vbench.host.netns import exec_argv

        return procs.run(exec_argv(self.netns, argv), timeout=timeout, check=False)


class OwnLibvirtd(LocalLab):
    """A user's own libvirt on this machine: no namespace, no dnsmasq log of ours; everything
    else (image, files, probe, peers) as in the lab."""

    kind = "libvirtd"

    def __init__(self, uri: str, state: "LabState | None" = None) -> None:
        super().__init__(uri, None, state)

    def dhcp_seen(self, mac: str, network: str) -> bool | None:
        return None  # the user's libvirt runs its own dnsmasq, without our log


# ---- another host --------------------------------------------------------------------------------

class OtherHost(Host):
    """Another host over its pinned SSH session: files, commands and peers there."""

    kind = "remote"
    netns = None

    def __init__(self, session: "RemoteHost") -> None:
        self.session = session
        self.uri = session.libvirt_uri

    @classmethod
    def refuse_unsupported(cls, scn: "Scenario", ab: bool = False) -> None:
        from vbench.host.remoteuri import refuse_unsupported

        refuse_unsupported(scn, ab=ab)

    @property
    def via(self) -> "RemoteHost":
        return self.session

    @property
    def name(self) -> str:
        return self.session.target.host

    def facts(self) -> dict:
        return self.session.host_facts(self.uri)

    def accelerator(self, kernel: Path | None, override: str | None = None) -> "Accelerator":
        """KVM only when asked for (``--accel kvm``/VBENCH_ACCEL): the boot probe that decides it
        on this host does not run on another host yet; TCG otherwise, and the record says why."""
        from vbench.host.accel import Accelerator, forced

        if (acc := forced(override)) is not None:
            return acc
        return Accelerator("tcg", f"{self.name}: the KVM boot probe does not run on "
                                  f"another host yet; --accel kvm forces KVM there")

    def place_image(self, img: Any, say: Callable[[str], None]) -> Any:
        return self.session.upload_image(img, say)

    def guest_dir(self, name: str) -> Path:
        return self.session.guest_dir(name)

    def prepare_guest(self, g: Any) -> None:
        """Overlay and scratch disk of guest ``g`` in its directory there (the guest layer's
        remote guest calls it; a guest's files here are the guest layer's own work)."""
        self.session.prepare_guest(g)

    def read_tail(self, path: Path | PurePosixPath, size: int) -> bytes:
        return self.session.read_tail(path, size)

    def remove_dir(self, path: Path | PurePosixPath) -> None:
        self.session.remove_dir(path)

    def qemu_pid(self, name: str) -> int | None:
        return None  # QEMU runs on the other host: its CPU time is not sampled there (yet)

    def kvm_counters(self, pid: int) -> "KvmCounters":
        from vbench.host import kvmstat

        res = self.session.run(kvmstat.stats_argv(pid), timeout=kvmstat.READ_TIMEOUT_S, check=False)
        return kvmstat.reading(res, pid)

    def baseline_scratch(self, run_id: str, size_gib: float, mode: str) -> Path:
        return self.session.host_scratch(run_id, size_gib, mode)

    def run_confined(self, argv: list[str], writable: Path | PurePosixPath, wrap: list[str],
                     timeout: float) -> CommandResult:
        return self.session.run_confined(argv, PurePosixPath(writable), wrap, timeout)

    def peer(self, argv: list[str], port: int) -> AbstractContextManager[Any]:
        return self.session.peer(argv, port)

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        return self.session.run(argv, timeout=timeout, check=False)

    def close(self) -> None:
        self.session.close()


def dhcp_log(network: str) -> Path:
    """Where the local lab's dnsmasq of ``network`` logs (set in the network's XML by
    ``lab.up``)."""
    return paths.lab_dir() / f"dnsmasq-{network}.log"


def kind_for(connect: str | None) -> type[Host]:
    """The kind of host ``--connect`` names, before anything is opened: the lab (no URI),
    another host (``qemu+ssh://``) or a user's libvirt on this machine."""
    from vbench.host.uris import is_remote

    if is_remote(connect):
        return OtherHost
    return LocalLab if connect is None else OwnLibvirtd


def require_host_devices(scn: "Scenario", exists: Callable[[str], bool] | None = None) -> None:
    """Refuse, before anything boots, a scenario whose variants need host devices this host lacks
    (e.g. vhost-net): never measure such a variant silently without them."""
    from vbench import devices

    missing = devices.missing_on_host([(v.name, scn.profile(v)) for v in scn.variants], exists)
    if missing:
        raise LabError(f"this host lacks what the scenario needs: {'; '.join(missing)}; run it "
                       f"on a host that has them, or drop those variants")


def for_uri(uri: str, netns: str | None, state: "LabState | None" = None,
            session: "RemoteHost | None" = None) -> Host:
    """The host of a lab: another host when it came with a session, the lab when it has its
    namespace, else a user's libvirt on this machine."""
    if session is not None:
        return OtherHost(session)
    if netns is not None:
        return LocalLab(uri, netns, state)
    return OwnLibvirtd(uri, state)


def local_facts(uri: str) -> dict:
    """The environment facts of this machine (and its libvirt at ``uri``)."""
    from vbench.host import libvirtd
    from vbench.host import sched
    from vbench.host.accel import kvm_module

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    qemu = procs.run(["qemu-system-x86_64", "--version"], timeout=10,
                     check=False).stdout.split("\n")[0]
    fio = procs.run(["fio", "--version"], timeout=10, check=False).stdout.strip()
    facts = {
        "host": platform.node(), "host_kernel": platform.release(), "cpu_model": cpu_model,
        "cpus": os.cpu_count(), "memory_mib": mem, "qemu_version": qemu,
        "fio_version_host": fio, "libvirt_uri": uri, "kvm_module": kvm_module(),
        "host_scheduler": sched.this_host(),
    }
    return {**facts, **libvirtd.daemon_facts(uri)}
