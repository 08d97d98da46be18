"""Persistent memory: a host file as virtio-pmem (DAX) against the same file as a virtio-blk disk.

Both models carry the same ext4 image (made on the host, 4 KiB blocks, inode tables and journal
initialised up front so that no lazy-init thread writes during the measurement), mounted in the
guest at :data:`MOUNT`; fio then runs on :data:`FIO_FILE` in it. On virtio-pmem the file system is
mounted ``-o dax``: loads and stores (``ioengine=mmap``) reach the host file's pages without the
guest page cache; on virtio-blk the same I/O goes through the guest page cache and the block
layer (``cache='none'``, ``io='native'``, like vbench's other disks). Both are paravirtual: the
question is DAX through virtio-pmem, or a block device.

libvirt 9.0 refuses ``<memory model='virtio-pmem'>`` ("not handled yet", checked on this host),
so the device goes to QEMU as ``<qemu:commandline>`` (``memory-backend-file`` with ``share=on``,
``virtio-pmem-pci`` at a fixed PCI slot, like NVMe); libvirt does not label a file it does not
know, so the image is handed to the QEMU user. A virtio-pmem region lives in the memory hotplug
area, which needs ``<maxMemory>`` and therefore a NUMA cell: both variants get the same memory
layout, so they differ only in the device. The guest binds ``virtio_pmem`` to the virtio device
and ``nd_pmem`` to the namespace behind ``/dev/pmem0``; the check walks the driver chain from the
block device up and wants both (virtio-blk: ``virtio_blk``, found by the disk's serial, never the
boot disk).
"""

from __future__ import annotations

import os
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

from pydantic import Field

from vbench.core.errors import GuestError
from vbench.devices.base import (Device, DomainFiles, DriverCheck, Fragment, GuestContext, Model,
                                 Strict, hotplug_memory)

MOUNT = "/mnt/vbench-pmem"
FIO_FILE = f"{MOUNT}/vbench-fio.data"
IMAGE = "pmem.img"
SERIAL = "vbench-pmem"
PCI_SLOT = "0x11"  # NVMe has 0x10; libvirt fills slots from the bottom


class PmemSpec(Strict):
    model: Literal["virtio-pmem", "virtio-blk"] = "virtio-pmem"
    size_mib: int = Field(1024, ge=128, le=16384, multiple_of=128,
                          description="the host file (an ext4 image); a multiple of 128 MiB "
                                      "(the guest's memory block size)")


def image_path(files: DomainFiles) -> str:
    return str(files.dir / IMAGE)


def pmem_args(spec: PmemSpec, source: str, q35: bool) -> str:
    path = source.replace(",", ",,")  # QEMU's option syntax doubles commas in values
    obj = f"memory-backend-file,id=vbench-pmem,share=on,mem-path={path},size={spec.size_mib}M"
    dev = (f"virtio-pmem-pci,memdev=vbench-pmem,id=vbench-pmem0,"
           f"bus={'pcie.0' if q35 else 'pci.0'},addr={PCI_SLOT}")
    return "".join(f"    <qemu:arg value={quoteattr(v)}/>\n" for v in ("-object", obj, "-device", dev))


def blk_xml(source: str) -> str:
    return (f"    <disk type='file' device='disk'>\n"
            f"      <driver name='qemu' type='raw' cache='none' io='native'/>\n"
            f"      <source file={quoteattr(source)}/>\n"
            f"      <target dev='vdb' bus='virtio'/>\n"
            f"      <serial>{SERIAL}</serial>\n"
            f"    </disk>\n")


def make_image(path: str, size_mib: int) -> None:
    """An ext4 image of ``size_mib`` (4 KiB blocks: DAX needs the page size)."""
    from vbench.core import procs

    with open(path, "wb") as fh:
        fh.truncate(size_mib << 20)
    res = procs.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "vbench-pmem",
                     "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard", path], timeout=300)
    if not res.ok:
        raise GuestError(f"cannot make the ext4 image {path}: {res.tail()}")


class Pmem(Device):
    kind = "pmem"
    spec = PmemSpec
    models = (
        Model("virtio-pmem", True, ("virtio_pmem", "nd_pmem"),
              {"CONFIG_VIRTIO_PMEM": "virtio_pmem", "CONFIG_BLK_DEV_PMEM": "nd_pmem"}),
        Model("virtio-blk", True, ("virtio_blk",), {"CONFIG_VIRTIO_BLK": "virtio_blk"}),
    )
    headline_metrics = ()  # fio's iops: already a headline metric (disk)
    # Find the device (pmem0, else the disk with our serial), print its driver chain, mount it
    # (DAX on pmem) and print what got mounted with which options.
    facts_script = (r"""d=""
[ -e /dev/pmem0 ] && d=pmem0
if [ -z "$d" ]; then
  for l in /dev/disk/by-id/*""" + SERIAL + r"""; do [ -e "$l" ] && d=$(basename "$(readlink -f "$l")"); done
fi
if [ -n "$d" ]; then
  echo "pmem_dev=$d"
  p=$(readlink -f "/sys/block/$d/device"); chain=""
  while [ -n "$p" ] && [ "$p" != "/sys/devices" ] && [ "$p" != "/" ]; do
    if [ -e "$p/driver" ]; then chain="$chain$(basename "$(readlink -f "$p/driver")"),"; fi
    p=$(dirname "$p")
  done
  echo "pmem_chain=$chain"
  if ! grep -qs " """ + MOUNT + r""" " /proc/mounts; then
    mkdir -p """ + MOUNT + r"""
    if [ "$d" = pmem0 ]; then mount -o dax /dev/$d """ + MOUNT + r""" 2>/dev/null
    else mount /dev/$d """ + MOUNT + r""" 2>/dev/null; fi
  fi
fi
echo "pmem_mount=$(grep -s " """ + MOUNT + r""" " /proc/mounts | cut -d' ' -f3,4 | head -n 1)"
""")

    def xml(self, spec: PmemSpec, ctx: GuestContext) -> Fragment:
        assert ctx.files is not None
        mem = hotplug_memory(ctx, spec.size_mib)
        src = image_path(ctx.files)
        if spec.model == "virtio-pmem":
            return mem + Fragment(qemu_args=pmem_args(spec, src, ctx.q35))
        return mem + Fragment(disks=blk_xml(src))

    def prepare(self, spec: PmemSpec, files: DomainFiles) -> None:
        path = image_path(files)
        make_image(path, spec.size_mib)
        if spec.model == "virtio-pmem":
            from vbench.devices.disk import qemu_user

            owner = qemu_user()  # libvirt labels only files it knows; this one it does not
            if owner is not None:
                os.chown(path, *owner)

    def parse_fact(self, key: str, value: str, facts: dict[str, Any]) -> bool:
        if key == "pmem_chain":
            facts[key] = [d for d in value.split(",") if d]
            return True
        if key == "pmem_mount":
            facts[key] = value
            fstype, _, opts = value.partition(" ")
            facts["pmem_dax"] = "dax" in opts.split(",") or "dax=always" in opts.split(",")
            if fstype == "ext4":
                facts["fio_file"] = FIO_FILE
            return True
        return False

    def check(self, spec: PmemSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        want = self.model(spec).drivers
        dev = facts.get("pmem_dev")
        if not dev:
            return DriverCheck(self.kind, spec.model, "+".join(want), "no pmem or disk found", False)
        chain = facts.get("pmem_chain") or []
        have = [d for d in want if d in chain]
        mount = facts.get("pmem_mount", "")
        dax = bool(facts.get("pmem_dax"))
        mounted = mount.startswith("ext4 ")
        ok = len(have) == len(want) and mounted and dax == (spec.model == "virtio-pmem")
        found = "+".join(have) if have else next((c for c in chain), "none")
        return DriverCheck(self.kind, spec.model, "+".join(want), found, ok,
                           f"/dev/{dev} ({' <- '.join(chain)}); {MOUNT} "
                           f"{'ext4' if mounted else 'not mounted'}{', dax' if dax else ''}")


DEVICE = Pmem()
