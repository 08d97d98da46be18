"""Prove inside the guest that every device under test is bound to the intended driver.

One shell script collects the facts (no python in the guest); pure functions parse and check
them, so the logic is unit-tested without a VM. A mismatch raises DeviceMismatch naming the
expected and the found driver, before anything is measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DeviceMismatch
from .scenario import DeviceProfile
from .virt import DISK_BUSES, NIC_MODELS, SCRATCH_SERIAL

FACTS_SCRIPT = r"""
echo "kernel=$(uname -r)"
for l in /dev/disk/by-id/*""" + SCRATCH_SERIAL + r"""; do
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
for n in /sys/class/net/*; do
  [ -e "$n/device/driver" ] || continue
  echo "nic=$(cat "$n/address") $(basename "$n") $(basename "$(readlink -f "$n/device/driver")")"
done
echo "rng_current=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null || echo absent)"
echo "rng_available=$(cat /sys/class/misc/hw_random/rng_available 2>/dev/null)"
b=""
for d in /sys/bus/virtio/drivers/virtio_balloon/virtio*; do [ -e "$d" ] && b="$b$(basename "$d") "; done
echo "balloon_bound=$b"
"""


@dataclass(frozen=True)
class DriverCheck:
    device: str       # disk | nic | rng | balloon
    model: str        # what the profile asked for
    expected: str     # driver(s) expected, "|"-joined
    found: str        # what the guest has bound
    ok: bool
    detail: str = ""  # e.g. the guest device name


def parse_facts(text: str) -> dict:
    facts: dict = {"nics": {}, "disks": []}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "nic":
            parts = value.split()
            if len(parts) == 3:
                facts["nics"][parts[0].lower()] = (parts[1], parts[2])
        elif key == "disk_dev":
            facts["disks"].append({"dev": value, "chain": []})
        elif key == "disk_chain" and facts["disks"]:
            facts["disks"][-1]["chain"] = [d for d in value.split(",") if d]
        else:
            facts[key] = value
    return facts


def check(profile: DeviceProfile, facts: dict, test_mac: str) -> list[DriverCheck]:
    """Compare the guest's bound drivers with the profile; one DriverCheck per device."""
    out: list[DriverCheck] = []
    if profile.disk is not None:
        want = DISK_BUSES[profile.disk.bus].drivers
        if not facts["disks"]:
            out.append(DriverCheck("disk", profile.disk.bus, "|".join(want), "no scratch disk found",
                                   False))
        else:
            d = facts["disks"][0]
            chain = d["chain"]
            controller = next((c for c in chain if c not in ("sd", "sr")), "none")
            found = next((c for c in chain if c in want), controller)
            out.append(DriverCheck("disk", profile.disk.bus, "|".join(want), found, found in want,
                                   f"/dev/{d['dev']} ({' <- '.join(chain)})"))
    if profile.nic is not None:
        want = NIC_MODELS[profile.nic.model][1]
        nic = facts["nics"].get(test_mac.lower())
        found = nic[1] if nic else "no NIC with the test MAC"
        out.append(DriverCheck("nic", profile.nic.model, "|".join(want), found, found in want,
                               nic[0] if nic else ""))
    cur = facts.get("rng_current", "absent") or "absent"
    if profile.rng.model == "virtio":
        out.append(DriverCheck("rng", "virtio", "virtio_rng", cur, cur.startswith("virtio_rng"),
                               "/sys/class/misc/hw_random/rng_current"))
    else:
        out.append(DriverCheck("rng", "none", "none", cur, cur in ("none", "absent"),
                               "/sys/class/misc/hw_random/rng_current"))
    bound = facts.get("balloon_bound", "").strip()
    if profile.balloon.model == "virtio":
        out.append(DriverCheck("balloon", "virtio", "virtio_balloon",
                               "virtio_balloon" if bound else "none", bool(bound), bound))
    else:
        out.append(DriverCheck("balloon", "none", "none", "virtio_balloon" if bound else "none",
                               not bound))
    return out


def require_all(checks: list[DriverCheck], guest: str) -> None:
    bad = [c for c in checks if not c.ok]
    if bad:
        desc = "; ".join(f"{c.device} ({c.model}): expected {c.expected}, found {c.found}" for c in bad)
        raise DeviceMismatch(f"guest {guest} does not run the intended drivers: {desc}")


def verify_guest_report(guest, profile: DeviceProfile) -> tuple[list[DriverCheck], dict]:
    """Collect facts over SSH and check them; returns (checks, facts) without raising."""
    from .virt import mac_for

    res = guest.ssh.run(FACTS_SCRIPT, timeout=30, check=True)
    facts = parse_facts(res.stdout)
    return check(profile, facts, mac_for(guest.name, "test")), facts


def verify_guest(guest, profile: DeviceProfile) -> tuple[list[DriverCheck], dict]:
    """Like verify_guest_report, but a mismatch raises DeviceMismatch."""
    checks, facts = verify_guest_report(guest, profile)
    require_all(checks, guest.name)
    return checks, facts
