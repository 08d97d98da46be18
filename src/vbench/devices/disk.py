"""The disk under test: a raw file on the host, attached as a second disk beside the boot disk.

Its bus is the model: virtio-blk and virtio-scsi are paravirtual, SATA (AHCI) and IDE (PIIX)
emulated. In the guest it is found by its serial (``/dev/disk/by-id/*vbench-scratch``) and its
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

from ..errors import GuestError
from .base import Device, DomainFiles, DriverCheck, Fragment, GuestContext, Model, Strict

SCRATCH_SERIAL = "vbench-scratch"
TARGET_DEV = {"virtio": "vdb", "scsi": "sda", "sata": "sda", "ide": "hda"}  # libvirt <target dev>


class DiskSpec(Strict):
    """The scratch disk under test (a raw file on the host), separate from the boot disk."""

    bus: Literal["virtio", "scsi", "sata", "ide"] = "virtio"
    size_gib: float = Field(2.0, gt=0, le=64)
    cache: Literal["none", "writeback", "writethrough", "directsync", "unsafe"] = "none"
    io: Literal["native", "io_uring", "threads"] = "native"
    preallocate: Literal["full", "falloc", "off"] = Field(
        "full", description="full: every block written once (reads hit real storage); falloc: "
        "reserved but unwritten (reads of it never touch the device); off: sparse")

    @model_validator(mode="after")
    def _native_needs_direct(self) -> "DiskSpec":
        if self.io == "native" and self.cache not in ("none", "directsync"):
            raise ValueError("io 'native' needs cache 'none' or 'directsync' (QEMU refuses it "
                             "otherwise); use io 'threads' or 'io_uring'")
        return self


def disk_xml(bus: str, source: str, cache: str, io: str) -> str:
    return (f"    <disk type='file' device='disk'>\n"
            f"      <driver name='qemu' type='raw' cache='{cache}' io='{io}'/>\n"
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


class Disk(Device):
    kind = "disk"
    spec = DiskSpec
    model_field = "bus"
    models = (
        Model("virtio", True, ("virtio_blk",), {"CONFIG_VIRTIO_BLK": "virtio_blk"}),
        Model("scsi", True, ("virtio_scsi",), {"CONFIG_SCSI_VIRTIO": "virtio_scsi"}),
        Model("sata", False, ("ahci",), {"CONFIG_SATA_AHCI": "ahci"}),
        Model("ide", False, ("ata_piix",), {"CONFIG_ATA_PIIX": "ata_piix"}),
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
        text = disk_xml(spec.bus, str(ctx.files.scratch), spec.cache, spec.io)
        if spec.bus == "scsi":
            text += "    <controller type='scsi' index='0' model='virtio-scsi'/>\n"
        return Fragment(disks=text)

    def prepare(self, spec: DiskSpec, files: DomainFiles) -> None:
        assert files.scratch is not None
        make_scratch(files.scratch, spec.size_gib, spec.preallocate)

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
