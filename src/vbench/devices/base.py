"""What every device module declares, and the small types the device modules share.

A device kind is one :class:`Device` subclass (``Disk``, ``Nic``, ...) declaring, like
virt-manager's ``virtinst/devices``: its scenario spec (a pydantic model), its :class:`Model`
table (which models exist, which of them are paravirtual, which guest drivers and kernel options
each needs), its presets and headline metrics; and, as methods, its domain XML
(:class:`Fragment`), its in-guest facts and driver check, and any host-side files it needs.
Nothing here knows a particular device.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Scenario sections: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Model:
    """One model of a device kind (``virtio``, ``sata``, ``e1000``, ``none``, ...)."""

    name: str
    paravirtual: bool                      # the one place that says "virtio or emulated"
    drivers: tuple[str, ...] = ()          # guest drivers that prove it (none: no device bound)
    kconfig: Mapping[str, str] = field(default_factory=dict)  # kernel option -> module file name


def virtio_or_none(driver: str, option: str, module: str = "") -> tuple[Model, Model]:
    """The models of a kind that is a virtio device or nothing (rng, balloon, most new kinds):
    ``driver`` binds to it in the guest, which needs kernel ``option`` (module file ``module``)."""
    return Model("virtio", True, (driver,), {option: module or driver}), Model("none", False)


@dataclass(frozen=True)
class DomainFiles:
    """Host files of one guest; device files (scratch disk, shared dirs) live in ``dir``."""

    overlay: Path
    scratch: Path | None
    console: Path
    kernel: Path | None   # None: the guest boots with its own bootloader (a user's image)
    initrd: Path | None

    @property
    def dir(self) -> Path:
        return self.overlay.parent


@dataclass(frozen=True)
class GuestContext:
    """What a device's XML and check may know of the guest besides its own spec."""

    name: str = ""
    files: DomainFiles | None = None
    test_net: str = ""   # libvirt network of the devices under test
    test_mac: str = ""   # MAC address of the NIC under test
    machine: str = "pc"  # QEMU machine type (pc, q35, pc-q35-7.2, ...)
    memory_mib: int = 0  # the guest's memory
    vcpus: int = 0

    @property
    def q35(self) -> bool:
        return is_q35(self.machine)


def is_q35(machine: str) -> bool:
    """Whether a QEMU machine type name is a q35 (ICH9, PCIe) machine."""
    return machine == "q35" or machine.startswith("pc-q35")


@dataclass(frozen=True)
class Fragment:
    """A device's part of the domain XML, by where it goes (each a run of indented lines)."""

    disks: str = ""       # in <devices>, after the boot disk: disks and their controllers
    interfaces: str = ""  # in <devices>, after the management NIC
    devices: str = ""     # in <devices>, after the interfaces: rng, memballoon, filesystem, ...
    domain: str = ""      # top level, after <currentMemory>: memoryBacking, maxMemory, ...
    cpu: str = ""         # inside <cpu> (e.g. <numa> for virtio-mem); <cpu> is written if needed
    cmdline: str = ""     # appended to the guest kernel's command line: " opt=value ..."
    qemu_args: str = ""   # <qemu:arg .../> lines, for what this libvirt has no XML for (NVMe)

    def __add__(self, other: "Fragment") -> "Fragment":
        return Fragment(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                           for f in fields(self)})


def hotplug_memory(ctx: GuestContext, device_mib: int, boot_mib: int | None = None) -> Fragment:
    """The ``<maxMemory>`` and NUMA cell that a memory device (virtio-pmem, virtio-mem) needs:
    libvirt places such devices in the hotplug area above ``<maxMemory>``'s boot memory and
    allows ``<maxMemory>`` only with a NUMA node. The cell holds the boot memory (``boot_mib``,
    default all of the guest's memory); the limit leaves the device and 1 GiB of alignment room."""
    boot = ctx.memory_mib if boot_mib is None else boot_mib
    cpus = f"0-{ctx.vcpus - 1}" if ctx.vcpus > 1 else "0"
    return Fragment(
        domain=(f"  <maxMemory slots='2' unit='MiB'>{ctx.memory_mib + device_mib + 1024}"
                f"</maxMemory>\n"),
        cpu=(f"    <numa>\n      <cell id='0' cpus='{cpus}' memory='{boot}' unit='MiB'/>\n"
             f"    </numa>\n"))


@dataclass(frozen=True)
class DriverCheck:
    device: str       # disk | nic | rng | balloon | ...
    model: str        # what the profile asked for
    expected: str     # driver(s) expected, "|"-joined
    found: str        # what the guest has bound
    ok: bool
    detail: str = ""  # e.g. the guest device name


@dataclass(frozen=True)
class HostProof:
    """What the host where QEMU runs shows of a device once its guest is up (e.g. vhost-net in
    use): ``used`` None when it could not be told; ``ok`` False when that contradicts what the
    spec asked for (``asked``, "" when the spec left it open). A failed proof is a failed
    verification: the variant is not measured."""

    name: str         # the fact, e.g. "vhost"
    asked: str        # "vhost: true", "vhost: false" or "" (unset: recorded, never failed)
    used: bool | None
    evidence: str     # e.g. "/dev/vhost-net open as fd 35 (netdev hostnet1)", "none"
    ok: bool


@dataclass(frozen=True)
class MemoryControl:
    """A live memory operation of a running guest: ``give()`` shrinks it to the target,
    ``take()`` grows it back; each answers (accepted, what was done); ``wait(shrinking, timeout)``
    returns the seconds until the guest got there."""

    give: Callable[[], tuple[bool, str]]
    take: Callable[[], tuple[bool, str]]
    wait: Callable[[bool, float], float]


@dataclass(frozen=True)
class ByteChannel:
    """A byte channel of a running guest: a UNIX socket on the host, a device file in the guest."""

    host_socket: Path
    guest_device: str


@dataclass(frozen=True)
class GuestSocket:
    """A socket transport into a running guest: the host connects to ``address`` in ``family``
    (``vsock``: the guest's CID; ``tcp``: its IPv4 address on the test network)."""

    family: Literal["vsock", "tcp"]
    address: str


class Device:
    """One device kind. Subclasses set the class attributes; the methods have working defaults.

    The default :meth:`check` needs no device facts of its own: it looks for the model's drivers
    among the drivers bound to a virtio or PCI device in the guest (``bound_drivers``). That is
    right for a kind the guest has only as the device under test (a virtio-fs, console, mem
    device); not for disks and NICs, whose drivers also serve the boot disk and the management
    NIC, which is why disk and nic check their own facts.
    """

    kind: ClassVar[str]                     # the scenario key: `device: disk`, `disk:`, `disk=sata`
    spec: ClassVar[type[Strict]]            # the scenario section of this device
    model_field: ClassVar[str] = "model"    # the spec field naming the model (`bus` for disks)
    models: ClassVar[tuple[Model, ...]]     # in the order of the spec field's Literal
    optional: ClassVar[bool] = True         # a profile may lack it; else it has the spec's defaults
    presets: ClassVar[Mapping[str, str]] = {}   # profile preset (virtio, emulated) -> model
    host_baseline: ClassVar[bool] = False   # scenarios of this device may add a host baseline
    headline_metrics: ClassVar[tuple[str, ...]] = ()  # the report's headline table
    facts_script: ClassVar[str] = ""        # sh lines printing `key=value` facts in the guest
    replaces: ClassVar[str] = ""            # a kind whose part this one takes over when present
                                            # (mem emits the <memballoon>: balloon steps aside)

    def model(self, spec: Any) -> Model:
        name = getattr(spec, self.model_field)
        return next(m for m in self.models if m.name == name)

    def is_paravirtual(self, spec: Any) -> bool:
        return self.model(spec).paravirtual

    def xml(self, spec: Any, ctx: GuestContext) -> Fragment:
        raise NotImplementedError(f"device {self.kind} has no domain XML")

    def guest_rule(self, spec: Any, machine: str) -> str | None:
        """Why this spec cannot run on a guest of ``machine`` (checked before anything boots)."""
        return None

    def host_requirements(self, spec: Any) -> tuple[tuple[str, str], ...]:
        """Host paths this spec needs, each with what needs it: ``(("/dev/vhost-net", "vhost"),)``."""
        return ()

    def kernel_options(self, spec: Any) -> Mapping[str, str]:
        """Guest kernel options (-> module file name) this device needs."""
        return self.model(spec).kconfig

    def prepare(self, spec: Any, files: DomainFiles) -> None:
        """Create host-side files in ``files.dir`` before the guest starts (none by default)."""

    def facts_init(self) -> dict[str, Any]:
        """Fact keys that are present even when the guest printed none of them."""
        return {}

    def parse_fact(self, key: str, value: str, facts: dict[str, Any]) -> bool:
        """Take one ``key=value`` line into ``facts``; False leaves it to the plain ``facts[key]``."""
        return False

    def check(self, spec: Any, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        model = self.model(spec)
        bound = set(str(facts.get("bound_drivers", "")).split())
        mine = [d for m in self.models for d in m.drivers]
        found = next((d for d in mine if d in bound), "none")
        want = model.drivers or ("none",)
        return DriverCheck(self.kind, model.name, "|".join(want), found, found in want)

    def host_proof(self, spec: Any, host: Any, guest_name: str,
                   ctx: GuestContext) -> "HostProof | None":
        """What the host shows of this device in guest ``guest_name``'s running QEMU, looked up
        through ``host`` (``vbench.host.hosts.Host``: ``qemu_pid``, ``run``); None: nothing."""
        return None

    def memory_control(self, spec: Any, guest: Any, full_mib: int,
                       target_mib: int) -> "MemoryControl | None":
        """A live operation: how a running guest with this device gives memory back to the host
        and takes it again (``None``: this device cannot). ``guest`` is the running guest (its
        ``set_memory_kib``, ``wait_balloon``, ``update_device_live``, ``dom``); the workloads that
        need the operation ask the device for it, never its kind."""
        return None

    def byte_channel(self, spec: Any, guest: Any, facts: dict[str, Any]) -> "ByteChannel | None":
        """A live operation: the host's and the guest's ends of a byte channel this device gives
        a running guest (``None``: it gives none; ``facts``: what the guest reported at boot)."""
        return None

    def guest_socket(self, spec: Any, guest: Any, facts: dict[str, Any]) -> "GuestSocket | None":
        """A live operation: the socket transport this device gives a running guest (``None``:
        none; vsock: the guest's CID, read from ``guest.live_xml()``)."""
        return None

    def validate_declaration(self) -> None:
        """Raise TypeError when the class attributes contradict each other."""
        names = tuple(m.name for m in self.models)
        ann = self.spec.model_fields[self.model_field].annotation
        if typing.get_origin(ann) is not typing.Literal or typing.get_args(ann) != names:
            raise TypeError(f"device {self.kind}: {self.spec.__name__}.{self.model_field} must be "
                            f"Literal{list(names)} (the names of its models, in order)")
        bad = [p for p, m in self.presets.items() if m not in names]
        if bad or not self.kind.isidentifier():
            raise TypeError(f"device {self.kind}: bad kind or presets {bad}")
