"""Prove inside the guest that every device under test is bound to the intended driver.

One shell script collects the facts (no python in the guest), each device module of
``vbench.devices`` adding its lines, parsing and check; the functions here are pure, so the
logic is unit-tested without a VM. A mismatch raises DeviceMismatch naming the
expected and the found driver, before anything is measured.

Some facts only the host where QEMU runs can show (vhost-net in use by the NIC under test):
:func:`host_proofs` asks each device for them through the lab's host interface, and a proof that
contradicts the profile fails the same way as a wrong driver.
"""

from __future__ import annotations

import time
from typing import Any

from vbench.devices import DEVICES, DriverCheck, GuestContext, HostProof
from vbench.core.errors import DeviceMismatch
from vbench.scenario.schema import DeviceProfile

__all__ = ["DriverCheck", "FACTS_SCRIPT", "HostProof", "check", "facts_script", "host_proofs",
           "parse_facts", "require_all", "require_proofs", "verify_guest", "verify_guest_report"]

# How long a guest's devices may take to appear after sshd answers, and how often to look again.
DEVICES_SETTLE_S = 30.0
SETTLE_POLL_S = 2.0

# Every driver bound to a virtio or PCI device: what Device.check looks for by default.
BOUND_DRIVERS = r"""d=""
for x in /sys/bus/virtio/drivers/*/virtio* /sys/bus/pci/drivers/*/0000:*; do
  [ -e "$x" ] && d="$d$(basename "$(dirname "$x")") "
done
echo "bound_drivers=$d"
"""


def facts_script() -> str:
    """The sh script that prints the guest's kernel and every registered device's facts."""
    # virt: the guest's own view of what it runs under (systemd-detect-virt: "kvm" under KVM,
    # "qemu" under TCG), kept with the domain type as proof of the accelerator. clocksource: what
    # the guest's clock reads (kvm-clock, tsc, or hpet, whose every read is an exit to QEMU: a
    # TCG guest with more than one vCPU gets hpet, its AMD-vendor TSCs deemed unsynchronised).
    return ('\necho "kernel=$(uname -r)"\necho "virt=$(systemd-detect-virt 2>/dev/null)"\n'
            'echo "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/'
            'current_clocksource 2>/dev/null)"\n'
            + "".join(d.facts_script for d in DEVICES.values()) + BOUND_DRIVERS)


FACTS_SCRIPT = facts_script()


def parse_facts(text: str) -> dict[str, Any]:
    devs = list(DEVICES.values())
    facts: dict[str, Any] = {}
    for d in devs:
        facts.update(d.facts_init())
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not any(d.parse_fact(key, value.strip(), facts) for d in devs):
            facts[key] = value.strip()
    return facts


def check(profile: DeviceProfile, facts: dict, test_mac: str) -> list[DriverCheck]:
    """Compare the guest's bound drivers with the profile; one DriverCheck per device."""
    ctx = GuestContext(test_mac=test_mac)
    return [dev.check(spec, facts, ctx) for dev, spec in profile.present()]


def require_all(checks: list[DriverCheck], guest: str) -> None:
    bad = [c for c in checks if not c.ok]
    if bad:
        desc = "; ".join(f"{c.device} ({c.model}): expected {c.expected}, found {c.found}" for c in bad)
        raise DeviceMismatch(f"guest {guest} does not run the intended drivers: {desc}")


def verify_guest_report(guest, profile: DeviceProfile) -> tuple[list[DriverCheck], dict]:
    """Collect facts over SSH and check them; returns (checks, facts) without raising.

    sshd can answer before the kernel has finished probing every device (an AHCI disk under TCG
    was not there yet 17 s after boot, with SSH up): while a check fails, the facts are read
    again every ``SETTLE_POLL_S`` for up to ``DEVICES_SETTLE_S``, and the last reading counts."""
    from vbench.guest.domain import mac_for

    deadline = time.monotonic() + DEVICES_SETTLE_S
    while True:
        res = guest.ssh.run(FACTS_SCRIPT, timeout=30, check=True)
        facts = parse_facts(res.stdout)
        checks = check(profile, facts, mac_for(guest.name, "test"))
        if all(c.ok for c in checks) or time.monotonic() >= deadline:
            return checks, facts
        time.sleep(SETTLE_POLL_S)


def verify_guest(guest, profile: DeviceProfile) -> tuple[list[DriverCheck], dict]:
    """Like verify_guest_report, but a mismatch raises DeviceMismatch."""
    checks, facts = verify_guest_report(guest, profile)
    require_all(checks, guest.name)
    return checks, facts


def host_proofs(guest, host, profile: DeviceProfile) -> list[HostProof]:
    """What the host where ``guest``'s QEMU runs shows of its devices (``host``: the lab's
    ``vbench.host.hosts.Host``); one HostProof per device that has something to show."""
    from vbench.guest.domain import mac_for

    ctx = GuestContext(name=guest.name, test_mac=mac_for(guest.name, "test"))
    out = [dev.host_proof(spec, host, guest.name, ctx) for dev, spec in profile.present()]
    return [p for p in out if p is not None]


def require_proofs(proofs: list[HostProof], guest: str) -> None:
    """Fail closed: a proof that contradicts the profile, or could not be made for what the
    profile asked, is a DeviceMismatch (the variant is not measured)."""
    bad = [p for p in proofs if not p.ok]
    if bad:
        desc = "; ".join(f"{p.asked} asked, but {p.name} is {proof_state(p.used)} on the "
                         f"host ({p.evidence})" for p in bad)
        raise DeviceMismatch(f"guest {guest} does not run the intended backend: {desc}")


def proof_state(used: bool | None) -> str:
    """How a proof's ``used`` reads in a sentence."""
    return "in use" if used else "not in use" if used is False else "not provable"
