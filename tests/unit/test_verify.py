"""In-guest driver verification: parsing the facts script's output and checking it per model.

The outputs below are what ``verify.FACTS_SCRIPT`` prints in a Debian 12 guest (kernel 6.1) for
each device, written from the sysfs layout of that kernel: the scratch disk's driver chain walks
from the block device up to the PCI function (``sd`` for SCSI/ATA disks, then the controller
driver, then ``virtio-pci`` for virtio devices), NICs print ``mac name driver``, the RNG is
``/sys/class/misc/hw_random/rng_current`` and the balloon is the list of virtio devices bound to
``virtio_balloon``.
"""

from __future__ import annotations

import pytest

from vbench.guest import verify
from vbench.core.errors import DeviceMismatch, GuestError, UserError
from vbench.scenario.schema import DeviceProfile, parse_profile
from vbench.devices.rng import RngSpec
from vbench.devices.nic import NicSpec
from vbench.devices.disk import DiskSpec
from vbench.devices.balloon import BalloonSpec
from vbench.guest.domain import mac_for
from tests.unit.driver_cases import presence_cases

GUEST = "vbench-20261126-101500-disk-2-sata"
MGMT_MAC = mac_for(GUEST, "mgmt")
TEST_MAC = mac_for(GUEST, "test")

# The scratch disk's driver chain for each bus, as the script prints it.
CHAINS = {
    "virtio": ("vdb", "virtio_blk,virtio-pci,"),
    "scsi": ("sda", "sd,virtio_scsi,virtio-pci,"),
    "sata": ("sda", "sd,ahci,"),
    "ide": ("sda", "sd,ata_piix,"),
}
# Drivers Linux binds to each NIC model QEMU emulates.
NIC_DRIVERS = ["virtio_net", "e1000", "e1000e", "8139cp", "8139too"]
ACCEPTS = {"virtio": {"virtio_net"}, "e1000": {"e1000"}, "e1000e": {"e1000e"},
           "rtl8139": {"8139cp", "8139too"}}


def facts_text(disk: str | None = "sata", nic_driver: str | None = "e1000",
               rng: str = "virtio_rng.0", balloon: str = "virtio4 ") -> str:
    """The facts script's output of a Debian 12 guest with these devices."""
    lines = ["kernel=6.1.0-28-amd64", "clocksource=hpet"]
    if disk is not None:
        dev, chain = CHAINS[disk]
        lines += [f"disk_dev={dev}", f"disk_chain={chain}"]
    lines.append(f"nic={MGMT_MAC} eth0 virtio_net")
    if nic_driver is not None:
        lines.append(f"nic={TEST_MAC} eth1 {nic_driver}")
    lines.append(f"rng_current={rng}")
    lines.append("rng_available=" + ("virtio_rng.0 " if rng.startswith("virtio") else ""))
    lines.append(f"balloon_bound={balloon}")
    return "\n".join(lines) + "\n"


def one(checks, device):
    found = [c for c in checks if c.device == device]
    assert len(found) == 1
    return found[0]


# ---- parse_facts ------------------------------------------------------------------------------

def test_parse_realistic_sata_output():
    f = verify.parse_facts(facts_text("sata", "e1000"))
    assert f["kernel"] == "6.1.0-28-amd64"
    assert f["clocksource"] == "hpet"  # a 2-vCPU TCG guest's (its TSCs deemed unsynchronised)
    assert "/sys/devices/system/clocksource/clocksource0/current_clocksource" in verify.FACTS_SCRIPT
    assert f["disks"] == [{"dev": "sda", "chain": ["sd", "ahci"]}]
    assert f["nics"] == {MGMT_MAC: ("eth0", "virtio_net"), TEST_MAC: ("eth1", "e1000")}
    assert f["rng_current"] == "virtio_rng.0"
    assert f["rng_available"] == "virtio_rng.0"
    assert f["balloon_bound"] == "virtio4"


@pytest.mark.parametrize("bus", list(CHAINS))
def test_parse_disk_chain_per_bus(bus):
    f = verify.parse_facts(facts_text(bus))
    dev, chain = CHAINS[bus]
    assert f["disks"] == [{"dev": dev, "chain": [c for c in chain.split(",") if c]}]


def test_parse_empty_values_and_no_disk():
    f = verify.parse_facts(facts_text(None, None, rng="none", balloon=""))
    assert f["disks"] == []
    assert f["nics"] == {MGMT_MAC: ("eth0", "virtio_net")}
    assert f["rng_current"] == "none" and f["rng_available"] == "" and f["balloon_bound"] == ""


def test_parse_ignores_noise_and_lowercases_macs():
    text = ("Warning: Permanently added ...\n\nsome line without equals\n"
            "nic=52:54:00:AA:BB:CC eth1 e1000\nnic=malformed line\n"
            "disk_chain=orphan,chain,\n")
    f = verify.parse_facts(text)
    assert f["nics"] == {"52:54:00:aa:bb:cc": ("eth1", "e1000")}
    assert f["disks"] == []  # a chain without a disk_dev line belongs to nothing


def test_parse_several_disk_links_keep_their_own_chain():
    text = "disk_dev=sda\ndisk_chain=sd,ahci,\ndisk_dev=sdb\ndisk_chain=sd,virtio_scsi,virtio-pci,\n"
    assert verify.parse_facts(text)["disks"] == [
        {"dev": "sda", "chain": ["sd", "ahci"]},
        {"dev": "sdb", "chain": ["sd", "virtio_scsi", "virtio-pci"]}]


# ---- check: disks -------------------------------------------------------------------------------

@pytest.mark.parametrize("found_bus", list(CHAINS))
@pytest.mark.parametrize("want_bus", list(CHAINS))
def test_disk_check_every_bus_against_every_chain(want_bus, found_bus):
    prof = DeviceProfile(disk=DiskSpec(bus=want_bus))
    c = one(verify.check(prof, verify.parse_facts(facts_text(found_bus)), TEST_MAC), "disk")
    assert c.model == want_bus
    assert c.ok is (want_bus == found_bus)
    controller = {"virtio": "virtio_blk", "scsi": "virtio_scsi", "sata": "ahci", "ide": "ata_piix"}
    assert c.expected == controller[want_bus]
    assert c.found == controller[found_bus]
    assert c.detail.startswith(f"/dev/{CHAINS[found_bus][0]} ")


def test_disk_check_without_scratch_disk_fails():
    prof = DeviceProfile(disk=DiskSpec(bus="virtio"))
    c = one(verify.check(prof, verify.parse_facts(facts_text(None)), TEST_MAC), "disk")
    assert not c.ok and c.found == "no scratch disk found"


def test_disk_check_with_no_controller_driver_fails():
    prof = DeviceProfile(disk=DiskSpec(bus="sata"))
    c = one(verify.check(prof, verify.parse_facts("disk_dev=sda\ndisk_chain=sd,\n"), TEST_MAC), "disk")
    assert not c.ok and c.found == "none"


def test_no_disk_in_profile_means_no_disk_check():
    checks = verify.check(DeviceProfile(), verify.parse_facts(facts_text("sata")), TEST_MAC)
    assert [c.device for c in checks] == ["rng", "balloon"]


# ---- check: NICs --------------------------------------------------------------------------------

@pytest.mark.parametrize("driver", NIC_DRIVERS)
@pytest.mark.parametrize("model", list(ACCEPTS))
def test_nic_check_every_model_against_every_driver(model, driver):
    prof = DeviceProfile(nic=NicSpec(model=model))
    c = one(verify.check(prof, verify.parse_facts(facts_text(None, driver)), TEST_MAC), "nic")
    assert c.ok is (driver in ACCEPTS[model])
    assert c.found == driver and c.detail == "eth1"
    assert set(c.expected.split("|")) == ACCEPTS[model]


def test_rtl8139_accepts_8139cp_and_8139too():
    prof = DeviceProfile(nic=NicSpec(model="rtl8139"))
    for drv in ("8139cp", "8139too"):
        assert one(verify.check(prof, verify.parse_facts(facts_text(None, drv)), TEST_MAC), "nic").ok


def test_nic_check_looks_at_the_test_mac_not_the_management_nic():
    prof = DeviceProfile(nic=NicSpec(model="virtio"))
    # Only the (virtio) management NIC is there: that must not count as the NIC under test.
    c = one(verify.check(prof, verify.parse_facts(facts_text(None, None)), TEST_MAC), "nic")
    assert not c.ok and c.found == "no NIC with the test MAC"


def test_nic_check_mac_case_insensitive():
    prof = DeviceProfile(nic=NicSpec(model="e1000"))
    c = one(verify.check(prof, verify.parse_facts(facts_text(None, "e1000")), TEST_MAC.upper()), "nic")
    assert c.ok


# ---- check: RNG and balloon -----------------------------------------------------------------------

@pytest.mark.parametrize("model, current, ok", [
    ("virtio", "virtio_rng.0", True),
    ("virtio", "none", False),
    ("virtio", "absent", False),
    ("virtio", "tpm-rng-0", False),
    ("none", "none", True),
    ("none", "absent", True),
    ("none", "virtio_rng.0", False),
])
def test_rng_check(model, current, ok):
    prof = DeviceProfile(rng=RngSpec(model=model))
    c = one(verify.check(prof, verify.parse_facts(facts_text(None, rng=current)), TEST_MAC), "rng")
    assert c.ok is ok and c.found == current and c.model == model


def test_rng_missing_line_counts_as_absent():
    prof = DeviceProfile(rng=RngSpec(model="none"))
    c = one(verify.check(prof, verify.parse_facts(""), TEST_MAC), "rng")
    assert c.ok and c.found == "absent"


@pytest.mark.parametrize("model, bound, ok, found",
                         presence_cases("virtio", "virtio4 ", "", "virtio_balloon"))
def test_balloon_check(model, bound, ok, found):
    prof = DeviceProfile(rng=RngSpec(model="none"), balloon=BalloonSpec(model=model))
    c = one(verify.check(prof, verify.parse_facts(facts_text(None, balloon=bound)), TEST_MAC),
            "balloon")
    assert c.ok is ok and c.found == found


# ---- whole profiles and require_all --------------------------------------------------------------

def test_virtio_preset_on_a_virtio_guest_passes():
    prof = parse_profile("virtio")
    checks = verify.check(prof, verify.parse_facts(facts_text("virtio", "virtio_net")), TEST_MAC)
    assert [c.device for c in checks] == ["disk", "nic", "rng", "balloon"]
    assert all(c.ok for c in checks)
    verify.require_all(checks, GUEST)  # does not raise


def test_emulated_preset_on_an_emulated_guest_passes():
    prof = parse_profile("emulated")
    text = facts_text("sata", "e1000", rng="none", balloon="")
    checks = verify.check(prof, verify.parse_facts(text), TEST_MAC)
    assert all(c.ok for c in checks)
    verify.require_all(checks, GUEST)


def test_require_all_names_expected_and_found():
    prof = parse_profile("disk=sata,nic=rtl8139,rng=none,balloon=none")
    text = facts_text("virtio", "e1000", rng="none", balloon="")
    checks = verify.check(prof, verify.parse_facts(text), TEST_MAC)
    with pytest.raises(DeviceMismatch) as exc:
        verify.require_all(checks, GUEST)
    msg = str(exc.value)
    assert isinstance(exc.value, GuestError) and isinstance(exc.value, UserError)
    assert exc.value.exit_status == 7
    assert GUEST in msg
    assert "disk (sata): expected ahci, found virtio_blk" in msg
    assert "nic (rtl8139): expected 8139cp|8139too, found e1000" in msg
    assert "rng" not in msg and "balloon" not in msg  # only the mismatches are named
    assert "\n" not in msg


def test_require_all_balloon_mismatch():
    prof = DeviceProfile(rng=RngSpec(model="none"), balloon=BalloonSpec(model="virtio"))
    checks = verify.check(prof, verify.parse_facts(facts_text(None, rng="none", balloon="")), TEST_MAC)
    with pytest.raises(DeviceMismatch, match=r"balloon \(virtio\): expected virtio_balloon, found none"):
        verify.require_all(checks, GUEST)


# ---- the guest seam -------------------------------------------------------------------------------

class FakeSsh:
    def __init__(self, stdout: str) -> None:
        self.stdout = stdout
        self.commands: list[str] = []

    def run(self, cmd, timeout=60, check=False):
        from vbench.core.metrics import CommandResult

        self.commands.append(cmd)
        return CommandResult(cmd, 0, self.stdout, "", 0.1)


class FakeGuest:
    def __init__(self, stdout: str) -> None:
        self.name = GUEST
        self.ssh = FakeSsh(stdout)


def test_verify_guest_runs_the_facts_script_and_raises_on_mismatch(monkeypatch):
    monkeypatch.setattr(verify, "DEVICES_SETTLE_S", 0.0)
    g = FakeGuest(facts_text("ide", "e1000", balloon=""))
    checks, facts = verify.verify_guest_report(g, parse_profile("disk=ide,nic=e1000"))
    assert g.ssh.commands == [verify.FACTS_SCRIPT]
    assert all(c.ok for c in checks) and facts["kernel"] == "6.1.0-28-amd64"
    with pytest.raises(DeviceMismatch, match="expected ata_piix, found ahci"):
        verify.verify_guest(FakeGuest(facts_text("sata", "e1000", balloon="")), parse_profile("disk=ide,nic=e1000"))


def test_a_device_the_kernel_probes_after_sshd_answers_is_waited_for_then_a_mismatch_stands(
        monkeypatch):
    naps: list[float] = []
    monkeypatch.setattr(verify.time, "sleep", naps.append)
    late = FakeGuest("")
    readings = iter([facts_text(None, "e1000", balloon=""), facts_text(None, "e1000", balloon=""),
                     facts_text("sata", "e1000", balloon="")])
    late.ssh.run = lambda cmd, timeout=60, check=False: FakeSsh(next(readings)).run(cmd)
    checks, facts = verify.verify_guest_report(late, parse_profile("disk=sata,nic=e1000"))
    assert all(c.ok for c in checks) and facts["disks"][0]["dev"] == "sda"
    assert naps == [verify.SETTLE_POLL_S] * 2       # read three times, the last reading counts
    clock = iter(range(0, 1000, 7))                 # a wrong driver never settles: bounded
    monkeypatch.setattr(verify.time, "monotonic", lambda: float(next(clock)))
    wrong = FakeGuest(facts_text("sata", "e1000", balloon=""))
    checks, _ = verify.verify_guest_report(wrong, parse_profile("disk=ide,nic=e1000"))
    assert not one(checks, "disk").ok
    assert 1 < len(wrong.ssh.commands) <= verify.DEVICES_SETTLE_S / 7 + 2


def test_facts_script_looks_for_the_scratch_serial():
    from vbench.devices.disk import SCRATCH_SERIAL

    assert f"/dev/disk/by-id/*{SCRATCH_SERIAL}" in verify.FACTS_SCRIPT
