"""The disk under test: a raw file on the host, attached as a second disk beside the boot disk.

Its bus is the model: virtio-blk and virtio-scsi are paravirtual, SATA (AHCI), IDE (PIIX) and
NVMe emulated. Knobs: the backing ``format`` (raw, or qcow2 as the source guide's snippet uses),
an ``iothread`` and ``queues`` for virtio-blk and the virtio-scsi controller. IDE exists only on
the pc (i440FX) machine: on q35 it is refused before anything boots.

NVMe: libvirt 9.0 has neither ``<target bus='nvme'>`` nor ``<controller type='nvme'>`` (both
refused as "Invalid value", checked on this host), so the controller is given to QEMU as
``<qemu:commandline>`` arguments (libvirt marks such a domain tainted, ``custom-argv``). libvirt does
not label files it does not know, so the scratch file is handed to the QEMU user. In the guest it is found by its serial (``/dev/disk/by-id/*vbench-scratch``) and its
driver chain, walked from the block device up to the PCI function, must contain the bus's
controller driver.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

from pydantic import Field, model_validator

from vbench.core.errors import GuestError
from vbench.devices.base import (Device, DomainFiles, DriverCheck, Fragment, GuestContext, Model,
                                 Strict, is_q35)

SCRATCH_SERIAL = "vbench-scratch"
TARGET_DEV = {"virtio": "vdb", "scsi": "sda", "sata": "sda", "ide": "hda"}  # libvirt <target dev>


class DiskSpec(Strict):
    """The scratch disk under test (a raw file on the host), separate from the boot disk."""

    bus: Literal["virtio", "scsi", "sata", "ide", "nvme"] = "virtio"
    format: Literal["raw", "qcow2"] = Field(
        "raw", description="backing file format; qcow2 is converted from the same raw content")
    size_gib: float = Field(2.0, gt=0, le=64)
    cache: Literal["none", "writeback", "writethrough", "directsync", "unsafe"] = "none"
    io: Literal["native", "io_uring", "threads"] = "native"
    preallocate: Literal["full", "falloc", "off"] = Field(
        "full", description="full: every block written once (reads hit real storage); falloc: "
        "reserved but unwritten (reads of it never touch the device); off: sparse")
    iothread: bool = Field(False, description="a dedicated I/O thread (virtio and scsi only)")
    queues: int | None = Field(None, ge=1, le=64, description="virtio-blk num-queues or the "
                               "virtio-scsi controller's queues (virtio and scsi only)")

    @model_validator(mode="after")
    def _native_needs_direct(self) -> "DiskSpec":
        if self.io == "native" and self.cache not in ("none", "directsync"):
            raise ValueError("io 'native' needs cache 'none' or 'directsync' (QEMU refuses it "
                             "otherwise); use io 'threads' or 'io_uring'")
        for knob in ("iothread", "queues"):
            if getattr(self, knob) and self.bus not in ("virtio", "scsi"):
                raise ValueError(f"{knob}: only virtio and scsi disks have {knob} (bus is "
                                 f"{self.bus!r})")
        if self.preallocate != "full" and self.format == "qcow2":
            raise ValueError("format qcow2 is converted from a fully written raw file: "
                             "preallocate must be 'full'")
        return self


def disk_xml(bus: str, source: str, cache: str, io: str, fmt: str = "raw", extra: str = "") -> str:
    return (f"    <disk type='file' device='disk'>\n"
            f"      <driver name='qemu' type='{fmt}' cache='{cache}' io='{io}'{extra}/>\n"
            f"      <source file={quoteattr(source)}/>\n"
            f"      <target dev='{TARGET_DEV[bus]}' bus='{bus}'/>\n"
            f"      <serial>{SCRATCH_SERIAL}</serial>\n"
            f"    </disk>\n")


def make_scratch(path: Path, size_gib: float, mode: str) -> None:
    """The raw backing file of a disk under test (also used for the host baseline).

    ``full`` writes every block once, so that reads hit real storage: reads of unwritten
    (fallocated or sparse) extents return zeros without touching the device and measure nothing.
    """
    size = int(size_gib * 2**30)
    try:
        with open(path, "wb") as fh:
            if mode == "full":
                chunk = os.urandom(1 << 20)
                for _ in range(size >> 20):
                    fh.write(chunk)
                fh.truncate(size)
                fh.flush()
                os.fsync(fh.fileno())
            elif mode == "falloc":
                os.posix_fallocate(fh.fileno(), 0, size)
            else:
                fh.truncate(size)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise GuestError(f"cannot create the {size_gib:g} GiB scratch disk {path}: {exc.strerror}; "
                         f"free disk space or set VBENCH_HOME elsewhere") from None


def _knobs(spec: "DiskSpec") -> str:
    """queues/iothread attributes of a virtio-blk <driver> or the virtio-scsi controller's."""
    return ((f" queues='{spec.queues}'" if spec.queues else "")
            + (" iothread='1'" if spec.iothread else ""))


def nvme_args(spec: "DiskSpec", source: str, q35: bool) -> str:
    """``<qemu:arg>`` lines of an emulated NVMe controller with the scratch file as namespace 1.

    The PCI slot is fixed (0x10: libvirt fills slots from the bottom) so that libvirt's own
    devices never collide with it; on q35 it sits on the PCIe root bus as an integrated device.
    """
    path = source.replace(",", ",,")  # QEMU's option syntax doubles commas in values
    aio = {"native": "native", "io_uring": "io_uring", "threads": "threads"}[spec.io]
    drive = (f"file={path},if=none,id=vbench-nvme,format={spec.format},cache={spec.cache},"
             f"aio={aio}")
    dev = (f"nvme,drive=vbench-nvme,serial={SCRATCH_SERIAL},"
           f"bus={'pcie.0' if q35 else 'pci.0'},addr=0x10")
    return "".join(f"    <qemu:arg value={quoteattr(v)}/>\n" for v in ("-drive", drive, "-device", dev))


def qemu_user() -> tuple[int, int] | None:
    """uid/gid of the account libvirt runs QEMU as (Debian: libvirt-qemu, Fedora: qemu)."""
    import pwd

    for name in ("libvirt-qemu", "qemu"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid
    return None


def to_qcow2(raw: Path, out: Path) -> None:
    """The same content as a qcow2 file (every cluster allocated), then the raw file is removed."""
    from vbench.core import procs

    res = procs.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)],
                    timeout=1800, check=False)
    raw.unlink(missing_ok=True)
    if not res.ok:
        raise GuestError(f"cannot convert the scratch disk to qcow2: {res.tail()}")


class Disk(Device):
    kind = "disk"
    spec = DiskSpec
    model_field = "bus"
    models = (
        Model("virtio", True, ("virtio_blk",), {"CONFIG_VIRTIO_BLK": "virtio_blk"}),
        Model("scsi", True, ("virtio_scsi",), {"CONFIG_SCSI_VIRTIO": "virtio_scsi"}),
        Model("sata", False, ("ahci",), {"CONFIG_SATA_AHCI": "ahci"}),
        Model("ide", False, ("ata_piix",), {"CONFIG_ATA_PIIX": "ata_piix"}),
        Model("nvme", False, ("nvme",), {"CONFIG_BLK_DEV_NVME": "nvme"}),
    )
    presets = {"virtio": "virtio", "emulated": "sata"}
    host_baseline = True
    headline_metrics = ("iops", "clat_p99")
    facts_script = r"""for l in /dev/disk/by-id/*""" + SCRATCH_SERIAL + r"""; do
  [ -e "$l" ] || continue
  dev=$(basename "$(readlink -f "$l")")
  echo "disk_dev=$dev"
  p=$(readlink -f "/sys/block/$dev/device")
  chain=""
  while [ -n "$p" ] && [ "$p" != "/sys/devices" ] && [ "$p" != "/" ]; do
    if [ -e "$p/driver" ]; then chain="$chain$(basename "$(readlink -f "$p/driver")"),"; fi
    p=$(dirname "$p")
  done
  echo "disk_chain=$chain"
done
"""

    def xml(self, spec: DiskSpec, ctx: GuestContext) -> Fragment:
        assert ctx.files is not None and ctx.files.scratch is not None
        iothreads = "  <iothreads>1</iothreads>\n" if spec.iothread else ""
        if spec.bus == "nvme":
            return Fragment(qemu_args=nvme_args(spec, str(ctx.files.scratch), ctx.q35))
        text = disk_xml(spec.bus, str(ctx.files.scratch), spec.cache, spec.io, spec.format,
                        _knobs(spec) if spec.bus == "virtio" else "")
        if spec.bus == "scsi":
            knobs = _knobs(spec)
            text += ("    <controller type='scsi' index='0' model='virtio-scsi'/>\n" if not knobs
                     else f"    <controller type='scsi' index='0' model='virtio-scsi'>\n"
                          f"      <driver{knobs}/>\n    </controller>\n")
        return Fragment(disks=text, domain=iothreads)

    def guest_rule(self, spec: DiskSpec, machine: str) -> str | None:
        if spec.bus == "ide" and is_q35(machine):
            return (f"bus 'ide' cannot run on machine {machine!r}: q35 has no IDE controller "
                    f"(use sata there, or machine pc for IDE)")
        return None

    def prepare(self, spec: DiskSpec, files: DomainFiles) -> None:
        assert files.scratch is not None
        if spec.format == "qcow2":
            raw = files.scratch.with_suffix(".raw-tmp")
            make_scratch(raw, spec.size_gib, spec.preallocate)
            to_qcow2(raw, files.scratch)
        else:
            make_scratch(files.scratch, spec.size_gib, spec.preallocate)
        if spec.bus == "nvme":
            owner = qemu_user()  # libvirt labels only files it knows; this one it does not
            if owner is not None:
                os.chown(files.scratch, *owner)

    def facts_init(self) -> dict[str, Any]:
        return {"disks": []}

    def parse_fact(self, key: str, value: str, facts: dict[str, Any]) -> bool:
        if key == "disk_dev":
            facts["disks"].append({"dev": value, "chain": []})
            return True
        if key == "disk_chain" and facts["disks"]:
            facts["disks"][-1]["chain"] = [d for d in value.split(",") if d]
            return True
        return False

    def check(self, spec: DiskSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        want = self.model(spec).drivers
        if not facts["disks"]:
            return DriverCheck("disk", spec.bus, "|".join(want), "no scratch disk found", False)
        d = facts["disks"][0]
        chain = d["chain"]
        controller = next((c for c in chain if c not in ("sd", "sr")), "none")
        found = next((c for c in chain if c in want), controller)
        return DriverCheck("disk", spec.bus, "|".join(want), found, found in want,
                           f"/dev/{d['dev']} ({' <- '.join(chain)})")


DEVICE = Disk()
