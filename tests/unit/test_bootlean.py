"""vbench.host.bootlean: what a recipe says about its guest's boot becomes exactly these files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

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


def test_masked_generators_are_links_to_dev_null_under_etc():
    assert bootlean.generator_masks(["systemd-gpt-auto-generator"]) == {
        "/etc/systemd/system-generators/systemd-gpt-auto-generator": "/dev/null"}
    assert bootlean.generator_masks([]) == {}


@pytest.mark.parametrize("name", ["../../bin/sh", "systemd-x-generator/..", "/dev/null",
                                  "../x-generator", "systemd-fstab-generator\nx", "-generator",
                                  "-x-generator", "Systemd-X-generator", "systemd-fstab", ""])
def test_a_recipe_names_generators_only(name):
    with pytest.raises(ValidationError):
        images.Recipe(name="r", suite="bookworm", packages=["udev"], mask_generators=[name])
    ok = images.Recipe(name="r", suite="bookworm", packages=["udev"],
                       mask_generators=["lvm2-activation-generator", "systemd-run-generator"])
    assert ok.mask_generators == ["lvm2-activation-generator", "systemd-run-generator"]


def test_shipped_recipe_keeps_the_generators_the_guest_needs(monkeypatch):
    """fstab (the root's mount options), getty (the serial console's login), run and debug (the
    reference bench starts its job with systemd.run= and masks networkd with systemd.mask= on the
    kernel line) still run."""
    monkeypatch.setenv("VBENCH_GUESTS", str(Path(__file__).resolve().parents[2] / "guests"))
    recipe, _ = images.load_recipe("debian12")
    assert "systemd-sysv-generator" in recipe.mask_generators
    assert not {"systemd-fstab-generator", "systemd-getty-generator", "systemd-run-generator",
                "systemd-debug-generator"} & set(recipe.mask_generators)
    bench = (Path(__file__).resolve().parents[2] / "bench" / "bench_reference.py").read_text()
    assert "systemd.run=" in bench and "systemd.mask=" in bench  # why run and debug stay
