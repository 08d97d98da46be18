"""``vbench guests verify`` retries a boot that fails as a run does (``guest.boot_retries``): a
fresh guest under a name of its own, the failure said on the progress line; the last failure
carries every attempt's reason. Fakes stand in for the lab and the guests (no VM)."""

from __future__ import annotations

import types

import pytest

from vbench.core.errors import BootError, GuestError
from vbench.guest import boot
from vbench.scenario.schema import GuestSpec


class FakeGuest:
    booted: list[str] = []
    fail: dict[str, int] = {}     # profile text -> boots of it that fail

    profiles: list = []

    def __init__(self, name, lb, img, prof, spec, acc, key, pub, tags, progress, cancel):
        self.name, self.variant, self.boot_seconds = name, tags["variant"], 12.0
        FakeGuest.profiles.append(prof)

    def __enter__(self):
        FakeGuest.booted.append(self.name)
        if FakeGuest.fail.get(self.variant, 0) > 0:
            FakeGuest.fail[self.variant] -= 1
            raise BootError(f"guest {self.name} got no DHCP lease within 240 s: userspace up",
                            "console tail", stage="userspace")
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def lab(monkeypatch):
    FakeGuest.booted, FakeGuest.fail, FakeGuest.profiles = [], {}, []
    host = types.SimpleNamespace(accelerator=lambda *a, **k: "tcg", facts=lambda: {"cpus": 1})
    monkeypatch.setattr(boot.lab, "current", lambda connect=None: types.SimpleNamespace(host=host))
    monkeypatch.setattr(boot.images, "require", lambda name: types.SimpleNamespace(kernel="k"))
    monkeypatch.setattr(boot.remote, "new_client_key", lambda: ("key", "pub"))
    monkeypatch.setattr(boot, "Guest", FakeGuest)
    check = types.SimpleNamespace(device="nic", model="e1000", expected="e1000", found="e1000",
                                  ok=True, detail="")
    monkeypatch.setattr(boot.verify, "verify_guest_report",
                        lambda g, prof: ([check], {"kernel": "6.1.0-57-amd64"}))


def test_a_failed_boot_is_retried_with_a_fresh_guest(lab):
    FakeGuest.fail = {"emulated": 1}
    said: list[str] = []
    rows = boot.verify_profiles(["virtio", "emulated"], progress=said.append)
    assert [r["profile"] for r in rows] == ["virtio", "emulated"] and all(r["ok"] for r in rows)
    emulated = [n for n in FakeGuest.booted if n.endswith("emulated")]
    assert len(emulated) == 2 and "-1-a1-emulated" in emulated[1] and "-a" not in emulated[0]
    assert said == [f"emulated: boot attempt 1 failed (guest {emulated[0]} got no DHCP lease "
                    f"within 240 s: userspace up); retrying with a fresh guest"]


def test_retries_are_bounded_and_the_last_error_names_every_attempt(lab):
    FakeGuest.fail = {"emulated": 5}
    with pytest.raises(BootError) as exc:
        boot.verify_profiles(["emulated"], progress=lambda s: None,
                             spec=GuestSpec(boot_retries=2))
    assert len(FakeGuest.booted) == 3 and FakeGuest.fail["emulated"] == 2
    msg = str(exc.value)
    assert msg.startswith(f"guest {FakeGuest.booted[2]} got no DHCP lease")
    assert "(boot attempt 3 of 3; attempt 1: guest " in msg and "; attempt 2: guest " in msg
    assert exc.value.stage == "userspace"


def test_no_retry_when_boot_retries_is_zero_or_the_error_is_not_a_boot(lab, monkeypatch):
    FakeGuest.fail = {"emulated": 1}
    with pytest.raises(BootError) as exc:
        boot.verify_profiles(["emulated"], progress=lambda s: None, spec=GuestSpec(boot_retries=0))
    assert len(FakeGuest.booted) == 1 and "boot attempt" not in str(exc.value)

    def broken(g, prof):
        raise GuestError("ssh: the guest closed the connection")
    monkeypatch.setattr(boot.verify, "verify_guest_report", broken)
    FakeGuest.booted = []
    with pytest.raises(GuestError, match="closed the connection"):
        boot.verify_profiles(["virtio"], progress=lambda s: None)
    assert len(FakeGuest.booted) == 1  # a guest that booted and then failed is not booted again


def test_verified_guests_get_the_same_devices_but_an_unwritten_scratch_disk(lab):
    """A guest that only proves its drivers bind reads nothing from its disk under test: the
    raw scratch is sparse (no 2 GiB of writes); every device and other disk field as asked."""
    from vbench.scenario.schema import parse_profile

    boot.verify_profiles(["virtio", "disk=sata,nic=e1000", "nic=e1000"], progress=lambda s: None)
    virtio, sata, nodisk = FakeGuest.profiles
    asked = parse_profile("virtio")
    assert asked.disk.preallocate == "full" and virtio.disk.preallocate == "off"
    assert virtio.disk.model_dump(exclude={"preallocate"}) == asked.disk.model_dump(
        exclude={"preallocate"})
    assert virtio.model_dump(exclude={"disk"}) == asked.model_dump(exclude={"disk"})
    assert sata.disk.bus == "sata" and sata.disk.preallocate == "off"
    assert nodisk.disk is None
    qcow2 = parse_profile("virtio").model_copy(update={"disk": asked.disk.model_copy(
        update={"format": "qcow2"})})
    assert boot.unmeasured(qcow2) is qcow2  # converted from a written raw file: left as asked


def test_guest_check_boot_retries_a_failed_boot(lab, monkeypatch):
    """``vbench guest check --boot`` boots one guest: a failed boot is retried as in a run."""
    from vbench.guest import domain, kconfig

    class CheckGuest(FakeGuest):
        def __init__(self, name, lb, img, prof, spec, acc, key, pub, tags, progress):
            super().__init__(name, lb, img, prof, spec, acc, key, pub, tags, progress, None)
            self.ssh = types.SimpleNamespace(run=lambda script, timeout, check: types.SimpleNamespace(
                stdout="kernel=6.1.0-57-amd64\nCONFIG_VIRTIO_BLK=y\n"))

    monkeypatch.setattr(domain, "Guest", CheckGuest)
    FakeGuest.fail = {"virtio": 1}
    said: list[str] = []
    release, values, bound = kconfig.check_running_guest(said.append)
    assert release == "6.1.0-57-amd64" and values.get("CONFIG_VIRTIO_BLK") == "y"
    assert len(FakeGuest.booted) == 2 and "-0-a1-virtio" in FakeGuest.booted[1]
    assert len(said) == 1 and said[0].startswith("guest check: boot attempt 1 failed (guest ")

    FakeGuest.booted, FakeGuest.fail = [], {"virtio": 5}
    with pytest.raises(BootError, match=r"boot attempt 2 of 2; attempt 1: guest "):
        kconfig.check_running_guest(None)   # --json: no progress lines, the error still says all
    assert len(FakeGuest.booted) == 2
