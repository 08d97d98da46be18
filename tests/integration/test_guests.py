"""Real guests of a virtio and an emulated profile show the intended drivers bound."""

from __future__ import annotations

import contextlib

import pytest

from .conftest import vbench

pytestmark = pytest.mark.integration


def test_verify_virtio_and_emulated_profiles(no_leftovers):
    out = vbench("guests", "verify", "virtio", "emulated", timeout=900).stdout
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0] in ("virtio", "emulated") and parts[1] in (
                "disk", "nic", "rng", "balloon"):
            rows[(parts[0], parts[1])] = (parts[4], parts[5])
    assert rows[("virtio", "disk")] == ("virtio_blk", "ok")
    assert rows[("virtio", "nic")] == ("virtio_net", "ok")
    assert rows[("virtio", "rng")] == ("virtio_rng.0", "ok")
    assert rows[("virtio", "balloon")] == ("virtio_balloon", "ok")
    assert rows[("emulated", "disk")] == ("ahci", "ok")
    assert rows[("emulated", "nic")] == ("e1000", "ok")
    assert rows[("emulated", "rng")] == ("none", "ok")
    assert rows[("emulated", "balloon")] == ("none", "ok")


def test_ide_scsi_and_rtl8139_bind_their_drivers(no_leftovers):
    out = vbench("guests", "verify", "disk=ide,nic=rtl8139,rng=none,balloon=none",
                 "disk=scsi,nic=e1000e,rng=virtio,balloon=virtio", timeout=900).stdout
    assert "ata_piix" in out and "virtio_scsi" in out
    assert "8139cp" in out or "8139too" in out
    assert "e1000e" in out
    assert "MISMATCH" not in out


def test_default_device_check_agrees_on_real_guests(no_leftovers):
    """The default Device.check (drivers bound to a virtio/PCI device), which new device kinds get
    for free, gives the same verdict as the rng and balloon checks on real guests."""
    from vbench.host import images, lab
    from vbench.guest import verify
    from vbench.host import ssh as remote
    from vbench.devices import DEVICES, Device, GuestContext
    from vbench.guest.boot import guest_name
    from vbench.scenario.schema import GuestSpec, parse_profile
    from vbench.guest.domain import Guest
    from vbench.core.sidebyside import side_by_side

    lb = lab.current()
    img = images.require("default")
    acc = lb.host.accelerator(img.kernel)
    pkey, pub = remote.new_client_key()
    seen: dict[str, tuple] = {}

    def one(job, own, cancel):   # both guests boot side by side, as a run's do
        i, text = job
        prof = parse_profile(text)
        with Guest(guest_name("verify", i, "default-check"), lb, img, prof, GuestSpec(), acc, pkey,
                   pub, tags={"run": "verify-default-check", "variant": text}, cancel=cancel) as g:
            return prof, *verify.verify_guest_report(g, prof)

    def done(job, fut):
        if fut.exception() is None:
            seen[job[1]] = fut.result()[0]
        return fut.exception()

    texts = ["rng=virtio,balloon=virtio", "rng=none,balloon=none"]
    with contextlib.ExitStack() as stack:
        side_by_side(stack, list(enumerate(texts)), 2, one, done)
    assert sorted(seen) == sorted(texts)
    for text, (prof, checks, facts) in seen.items():
        assert all(c.ok for c in checks), checks
        assert "virtio-pci" in facts["bound_drivers"].split()
        for kind in ("rng", "balloon"):
            spec = getattr(prof, kind)
            c = Device.check(DEVICES[kind], spec, facts, GuestContext())
            assert c.ok, (text, c)
            assert c.found == (f"virtio_{kind}" if spec.model == "virtio" else "none")
