"""vbench.host.bootlean: what a recipe says about its guest's boot becomes exactly these files."""

from __future__ import annotations

from pathlib import Path

from vbench.host import bootlean, images


def test_initramfs_list_is_module_names_one_per_line():
    files = bootlean.initramfs_files(["virtio_pci", "virtio_blk", "ext4"])
    assert set(files) == {bootlean.INITRAMFS_CONF, bootlean.INITRAMFS_MODULES}
    assert "MODULES=list" in files[bootlean.INITRAMFS_CONF].splitlines()
    body = [ln for ln in files[bootlean.INITRAMFS_MODULES].splitlines() if not ln.startswith("#")]
    assert body == ["virtio_pci", "virtio_blk", "ext4"]


def test_blacklist_says_blacklist_only():
    text = bootlean.blacklist_file(["floppy", "pcspkr"])[bootlean.BLACKLIST_CONF]
    body = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert body == ["blacklist floppy", "blacklist pcspkr"]  # never `install` (that runs a command)


def test_no_lists_keep_debians_defaults():
    assert bootlean.initramfs_files([]) == {} and bootlean.blacklist_file([]) == {}


def test_shipped_recipe_keeps_every_driver_a_device_under_test_needs(monkeypatch):
    """The default guest never blacklists a driver that a device model binds, and its initramfs
    carries the root disk's driver and file system (the root disk is always virtio-blk, ext4)."""
    from vbench.devices import DEVICES

    monkeypatch.setenv("VBENCH_GUESTS", str(Path(__file__).resolve().parents[2] / "guests"))
    recipe, _ = images.load_recipe("debian12")
    assert {"virtio_pci", "virtio_blk", "ext4"} <= set(recipe.initramfs_modules)
    drivers = {d for dev in DEVICES.values() for m in dev.models for d in m.drivers}
    assert drivers and not drivers & set(recipe.blacklist_modules)
