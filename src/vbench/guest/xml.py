"""Domain XML of a guest: its fixed part (boot disk, management NIC, serial console, pvpanic)
around the fragments of its devices under test, which each device module of ``vbench.devices``
writes (``<target dev='vdb' bus='virtio'/>``, ``<model type='virtio'/>``, ...); deterministic, so
that the golden files under tests/golden pin it. No libvirt here: :mod:`vbench.guest.domain` starts it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from vbench.devices import DomainFiles, Fragment, GuestContext
from vbench.devices.nic import interface_xml
from vbench.core.errors import GuestError
from vbench.host.libvirtd import DOMAIN_PREFIX, VBENCH_NS


if TYPE_CHECKING:  # pragma: no cover
    from vbench.scenario.schema import DeviceProfile, GuestSpec

DOMAIN_NAME_RE = re.compile("^" + re.escape(DOMAIN_PREFIX) + r"[A-Za-z0-9_.-]{1,80}$")


def mac_for(name: str, role: str) -> str:
    h = hashlib.sha256(f"{name}/{role}".encode()).digest()
    return "52:54:00:%02x:%02x:%02x" % (h[0], h[1], h[2])


# ---- XML ---------------------------------------------------------------------------------------

def _check_names(name: str, tags: dict[str, str]) -> None:
    if not DOMAIN_NAME_RE.fullmatch(name):
        raise GuestError(f"invalid domain name {name!r}")
    for k in tags:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", k):
            raise GuestError(f"invalid metadata tag name {k!r}")


def _cpu_xml(passthrough: bool, inner: str) -> str:
    """Host CPU passthrough (KVM only: TCG cannot pass the host CPU through) and device parts."""
    mode = " mode='host-passthrough'" if passthrough else ""
    if not inner:
        return f"  <cpu{mode}/>\n" if passthrough else ""
    return f"  <cpu{mode}>\n{inner}  </cpu>\n"


@dataclass(frozen=True)
class OwnBoot:
    """A guest that boots a user's image with its own bootloader (vbench.guest.userimage): no direct
    kernel boot; a cloud-init seed as a read-only CD-ROM on the machine's built-in IDE (pc) or
    SATA (q35) controller, so the seed adds no PCI device; UEFI when ``loader`` is set."""

    seed: Path
    loader: str | None = None         # OVMF code
    nvram_template: str | None = None
    nvram: Path | None = None
    base: Path | None = None          # the user's image under the overlay, and its format
    base_format: str = "qcow2"

    def backing_xml(self) -> str:
        """The overlay's backing chain, given to libvirt instead of probed: its format stated, and
        ``relabel='no'`` so that libvirt never changes the owner of the user's file (QEMU reads it
        with the permissions it has; vbench.guest.userimage checks them first)."""
        if self.base is None:
            return ""
        return ("      <backingStore type='file'>\n"
                f"        <format type='{self.base_format}'/>\n"
                f"        <source file={quoteattr(str(self.base))}>\n"
                "          <seclabel model='dac' relabel='no'/>\n"
                "        </source>\n        <backingStore/>\n      </backingStore>\n")

    def os_xml(self) -> str:
        if not self.loader:
            return "    <boot dev='hd'/>\n"
        return (f"    <loader readonly='yes' type='pflash'>{escape(self.loader)}</loader>\n"
                f"    <nvram template={quoteattr(str(self.nvram_template))}>"
                f"{escape(str(self.nvram))}</nvram>\n    <boot dev='hd'/>\n")

    def seed_xml(self, machine: str) -> str:
        from vbench.devices.base import is_q35

        target = "<target dev='sdc' bus='sata'/>" if is_q35(machine) else \
            "<target dev='hdc' bus='ide'/>"
        return ("    <disk type='file' device='cdrom'>\n"
                "      <driver name='qemu' type='raw'/>\n"
                f"      <source file={quoteattr(str(self.seed))}/>\n"
                f"      {target}\n      <readonly/>\n    </disk>\n")


def _devices_xml(parts: Fragment, files: DomainFiles, mgmt_nic: str,
                 own_boot: OwnBoot | None = None, machine: str = "pc") -> str:
    """Inside <devices>: the boot disk, the management NIC and the console around the devices'
    fragments (disks after the boot disk, interfaces after the management NIC), no USB."""
    seed = own_boot.seed_xml(machine) if own_boot else ""
    return ("    <disk type='file' device='disk'>\n"
            "      <driver name='qemu' type='qcow2'/>\n"
            f"      <source file={quoteattr(str(files.overlay))}/>\n"
            f"{own_boot.backing_xml() if own_boot else ''}"
            "      <target dev='vda' bus='virtio'/>\n"
            f"    </disk>\n{seed}{parts.disks}{mgmt_nic}{parts.interfaces}{parts.devices}"
            f"    <serial type='file'>\n      <source path={quoteattr(str(files.console))}/>\n"
            f"      <target port='0'/>\n    </serial>\n"
            # pvpanic: a guest kernel panic reaches libvirt (on_crash), not a silently hung guest.
            "    <panic model='isa'>\n      <address type='isa' iobase='0x505'/>\n    </panic>\n"
            # No USB controller: nothing vbench measures is USB, and libvirt's default (PIIX3
            # UHCI) is a PCI device the guest probes at boot and QEMU's timers serve while it runs.
            "    <controller type='usb' model='none'/>\n")


def domain_xml(name: str, profile: "DeviceProfile", guest: "GuestSpec", domain_type: str,
               files: DomainFiles, cmdline: str, mgmt_net: str, test_net: str,
               tags: dict[str, str], mgmt_link_down: bool = False,
               cpu_mode: str = "host-passthrough", emulator: str | None = None,
               own_boot: OwnBoot | None = None) -> str:
    """The complete domain XML for a guest of ``profile``; deterministic for golden tests.

    ``emulator``: the QEMU binary (an A/B side, see vbench.run.ab); None lets libvirt pick its own.
    ``own_boot``: the guest boots its own bootloader (a user's image) instead of direct kernel boot.
    """
    _check_names(name, tags)
    meta = "".join(f"      <vbench:{k}>{escape(str(v))}</vbench:{k}>\n" for k, v in sorted(tags.items()))
    ctx = GuestContext(name, files, test_net, mac_for(name, "test"), guest.machine,
                       guest.memory_mib, guest.vcpus)
    parts = sum((dev.xml(spec, ctx) for dev, spec in profile.present()), Fragment())
    cpu = _cpu_xml(domain_type == "kvm" and cpu_mode == "host-passthrough", parts.cpu)
    if own_boot is not None and parts.cmdline:
        raise GuestError(f"a device of this profile needs guest kernel options "
                         f"({parts.cmdline.strip()}), which vbench cannot set on an image that "
                         f"boots with its own bootloader")
    devices = _devices_xml(parts, files, interface_xml(mgmt_net, mac_for(name, "mgmt"), "virtio",
                                                       mgmt_link_down), own_boot, guest.machine)
    if own_boot is not None:
        os_boot = own_boot.os_xml()
    else:
        os_boot = (f"    <kernel>{escape(str(files.kernel))}</kernel>\n"
                   f"    <initrd>{escape(str(files.initrd))}</initrd>\n"
                   f"    <cmdline>{escape(cmdline + parts.cmdline)}</cmdline>\n")
    return (
        f"<domain type='{domain_type}'>\n"
        f"  <name>{name}</name>\n"
        f"  <metadata>\n    <vbench:guest xmlns:vbench='{VBENCH_NS}'>\n{meta}    </vbench:guest>\n"
        f"  </metadata>\n"
        f"  <memory unit='MiB'>{guest.memory_mib}</memory>\n"
        f"  <currentMemory unit='MiB'>{guest.memory_mib}</currentMemory>\n{parts.domain}"
        f"  <vcpu>{guest.vcpus}</vcpu>\n"
        f"  <os>\n    <type arch='x86_64' machine='{guest.machine}'>hvm</type>\n"
        f"{os_boot}  </os>\n"
        f"  <features>\n    <acpi/>\n    <apic/>\n  </features>\n{cpu}"
        f"  <clock offset='utc'/>\n"
        f"  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n"
        f"  <on_crash>destroy</on_crash>\n"
        f"  <devices>\n{_emulator_xml(emulator)}{devices}  </devices>\n{_qemu_xml(parts.qemu_args)}"
        f"</domain>\n")


def _emulator_xml(path: str | None) -> str:
    return f"    <emulator>{escape(path)}</emulator>\n" if path else ""


def _qemu_xml(args: str) -> str:
    """QEMU arguments of devices this libvirt has no XML for (libvirt marks the domain tainted)."""
    if not args:
        return ""
    return (f"  <qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n{args}"
            f"  </qemu:commandline>\n")


def kernel_cmdline(root_label: str, ssh_pubkey: str) -> str:
    """The guest kernel line. No ``quiet``: the kernel log goes to the serial console (a file of
    vbench's, so it costs nothing), and with it the image's boot markers (vbench.host.bootlog), so a
    guest that stops during boot leaves a trace of how far it got. ``fsck.mode=skip`` (honoured by
    the initramfs and by systemd): the root is a fresh overlay of a base the image build wrote and
    no guest ever writes back, so a check finds nothing and costs a second of every boot under TCG."""
    key = ":".join(ssh_pubkey.split()[:2])  # "ssh-ed25519 AAAA..." without spaces
    return (f"root=LABEL={root_label} rw console=ttyS0,115200 net.ifnames=0 "
            f"systemd.show_status=0 fsck.mode=skip vbench.sshkey={key}")
