"""`vbench guest check` on the real default image, and on a running guest of it."""

from __future__ import annotations

import json

import pytest

from vbench.guest.kconfig import SEED_OPTIONS

from .conftest import vbench

pytestmark = pytest.mark.integration


def test_guest_check_on_the_default_image(lab_ready):
    out = json.loads(vbench("guest", "check", "--json").stdout)
    states = {o["option"]: o["state"] for o in out["options"]}
    assert list(states) == list(SEED_OPTIONS)  # every option of the source guide, in its order
    assert set(states.values()) <= {"built-in", "module", "missing"}
    for opt in ("CONFIG_VIRTIO_BLK", "CONFIG_VIRTIO_NET", "CONFIG_HW_RANDOM_VIRTIO",
                "CONFIG_VIRTIO_BALLOON", "CONFIG_SCSI_VIRTIO", "CONFIG_VIRTIO_PCI"):
        assert states[opt] in ("built-in", "module"), opt
    human = vbench("guest", "check", "--scenario", "scenarios/disk.yaml").stdout
    assert "CONFIG_VIRTIO_BLK" in human and "scenario can run: yes" in human


def test_guest_check_on_a_running_guest_lists_bound_drivers(no_leftovers):
    out = json.loads(vbench("guest", "check", "--boot", "--json", timeout=600).stdout)
    assert out["target"].startswith("running guest (kernel 6.")
    drivers = {b["driver"] for b in out["bound"]}
    assert {"virtio_blk", "virtio_net", "virtio_rng", "virtio_balloon"} <= drivers
    states = {o["option"]: o["state"] for o in out["options"]}
    assert states["CONFIG_VIRTIO_NET"] in ("built-in", "module")
