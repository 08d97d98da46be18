"""virtio-pmem against virtio-blk (device pmem): XML, the mount/driver-chain facts and check."""

from __future__ import annotations

import pytest

from vbench.devices import DEVICES
from vbench.devices.pmem import FIO_FILE, MOUNT, PmemSpec
from vbench.guest.verify import parse_facts

from .test_domain_xml import GDIR, scratch_disk
from .test_domain_xml_knobs import _qemu_args, _root

PMEM = DEVICES["pmem"]


@pytest.mark.parametrize("case, bus", [("pmem-virtio-pmem", "pci.0"), ("pmem-virtio-pmem-q35", "pcie.0")])
def test_virtio_pmem_is_a_qemu_device_on_a_shared_file_backend(case, bus):
    root = _root(case)
    args = _qemu_args(root)
    assert args[0] == "-object" and args[2] == "-device"
    kind, *kv = args[1].split(",")
    obj = dict(x.split("=", 1) for x in kv)
    assert kind == "memory-backend-file" and obj["share"] == "on" and obj["size"] == "1024M"
    assert obj["mem-path"] == str(GDIR / "pmem.img")
    dev = args[3].split(",")
    assert dev[0] == "virtio-pmem-pci" and f"memdev={obj['id']}" in dev and f"bus={bus}" in dev
    assert scratch_disk(root) is None and len(root.findall("./devices/disk")) == 1  # boot disk only


@pytest.mark.parametrize("case", ["pmem-virtio-pmem", "pmem-virtio-blk"])
def test_both_models_have_the_same_hotplug_memory_layout(case):
    root = _root(case)
    mx = root.find("maxMemory")
    assert (mx.get("slots"), mx.get("unit"), mx.text) == ("2", "MiB", str(1024 + 1024 + 1024))
    cell = root.find("./cpu/numa/cell")
    assert (cell.get("cpus"), cell.get("memory"), cell.get("unit")) == ("0-1", "1024", "MiB")
    assert root.find("memory").text == "1024"


def test_virtio_blk_model_is_a_libvirt_disk_of_the_same_image_with_its_own_serial():
    root = _root("pmem-virtio-blk")
    disks = root.findall("./devices/disk")
    assert len(disks) == 2 and _qemu_args(root) == []
    d = disks[1]
    assert d.find("source").get("file") == str(GDIR / "pmem.img")
    assert d.find("target").get("bus") == "virtio" and d.findtext("serial") == "vbench-pmem"
    drv = d.find("driver")
    assert (drv.get("type"), drv.get("cache"), drv.get("io")) == ("raw", "none", "native")


def _facts(dev: str, chain: str, mount: str) -> dict:
    return parse_facts(f"kernel=6.1.0\nbound_drivers=virtio_blk\npmem_dev={dev}\n"
                       f"pmem_chain={chain}\npmem_mount={mount}\n")


PMEM_CHAIN = "nd_pmem,nd_region,virtio_pmem,virtio-pci,"
BLK_CHAIN = "virtio_blk,virtio-pci,"


@pytest.mark.parametrize("model, dev, chain, mount, ok", [
    ("virtio-pmem", "pmem0", PMEM_CHAIN, "ext4 rw,relatime,dax=always", True),
    ("virtio-pmem", "pmem0", PMEM_CHAIN, "ext4 rw,relatime", False),          # mounted without DAX
    ("virtio-pmem", "pmem0", "nd_pmem,nd_region,", "ext4 rw,dax=always", False),  # not virtio
    ("virtio-pmem", "vdb", BLK_CHAIN, "ext4 rw,relatime", False),             # the other model
    ("virtio-blk", "vdb", BLK_CHAIN, "ext4 rw,relatime", True),
    ("virtio-blk", "vdb", BLK_CHAIN, "", False),                                # not mounted
    ("virtio-blk", "pmem0", PMEM_CHAIN, "ext4 rw,dax=always", False),
])
def test_check_wants_the_driver_chain_the_mount_and_dax_only_on_pmem(model, dev, chain, mount, ok):
    facts = _facts(dev, chain, mount)
    c = PMEM.check(PmemSpec(model=model), facts, None)
    assert c.ok is ok, c
    assert MOUNT in c.detail and f"/dev/{dev}" in c.detail
    if ok:
        assert c.found == c.expected
    assert facts.get("fio_file") == (FIO_FILE if mount.startswith("ext4") else None)


def test_nothing_found_is_a_failed_check():
    c = PMEM.check(PmemSpec(), parse_facts("kernel=6.1.0\npmem_mount=\n"), None)
    assert not c.ok and c.found == "no pmem or disk found"


def test_size_is_a_whole_number_of_memory_blocks():
    with pytest.raises(ValueError):
        PmemSpec(size_mib=1000)


def test_kernel_options_per_model():
    assert set(PMEM.kernel_options(PmemSpec())) == {"CONFIG_VIRTIO_PMEM", "CONFIG_BLK_DEV_PMEM"}
    assert set(PMEM.kernel_options(PmemSpec(model="virtio-blk"))) == {"CONFIG_VIRTIO_BLK"}


def test_prepare_makes_an_ext4_image_of_the_size(tmp_path):
    from vbench.devices.base import DomainFiles

    files = DomainFiles(tmp_path / "overlay.qcow2", None, tmp_path / "c.log", tmp_path / "k", tmp_path / "i")
    PMEM.prepare(PmemSpec(model="virtio-blk", size_mib=128), files)
    img = tmp_path / "pmem.img"
    assert img.stat().st_size == 128 << 20
    with open(img, "rb") as fh:  # ext4 superblock magic 0xEF53 at 1024 + 56
        fh.seek(1024 + 56)
        assert fh.read(2) == b"\x53\xef"
