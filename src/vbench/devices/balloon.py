"""The memory balloon: virtio-balloon (with 1 s statistics for libvirt), or explicitly none.

Without an explicit ``<memballoon>`` element libvirt adds a virtio balloon by itself, so ``none``
is said out loud. In the guest, the balloon is the list of virtio devices bound to
``virtio_balloon``.
"""

from __future__ import annotations

from typing import Any, Literal

from vbench.devices.base import (Device, DriverCheck, Fragment, GuestContext, MemoryControl, Strict,
                                 virtio_or_none)


class BalloonSpec(Strict):
    model: Literal["virtio", "none"] = "none"


def memballoon_xml(model: str) -> str:
    if model == "none":
        return "    <memballoon model='none'/>\n"
    return "    <memballoon model='virtio'>\n      <stats period='1'/>\n    </memballoon>\n"


def balloon_control(guest: Any, full_mib: int, target_mib: int) -> MemoryControl:
    """Memory given back through the balloon: libvirt's setMemory, then its ``actual``. Asked
    of a guest without a balloon, setMemory fails and says so: that answer is the measurement."""
    def set_kib(kib: int) -> tuple[bool, str]:
        ok, answer = guest.set_memory_kib(kib)
        return ok, f"setMemory({kib} KiB): {answer}"

    return MemoryControl(
        give=lambda: set_kib(target_mib * 1024), take=lambda: set_kib(full_mib * 1024),
        wait=lambda shrinking, timeout: guest.wait_balloon(
            (target_mib if shrinking else full_mib) * 1024, timeout, shrinking))


class Balloon(Device):
    kind = "balloon"
    spec = BalloonSpec
    models = virtio_or_none("virtio_balloon", "CONFIG_VIRTIO_BALLOON")
    optional = False
    presets = {"virtio": "virtio", "emulated": "none"}
    headline_metrics = ("host_mem_returned",)
    facts_script = r"""b=""
for d in /sys/bus/virtio/drivers/virtio_balloon/virtio*; do [ -e "$d" ] && b="$b$(basename "$d") "; done
echo "balloon_bound=$b"
"""

    def xml(self, spec: BalloonSpec, ctx: GuestContext) -> Fragment:
        return Fragment(devices=memballoon_xml(spec.model))

    def memory_control(self, spec: BalloonSpec, guest: Any, full_mib: int,
                       target_mib: int) -> MemoryControl:
        return balloon_control(guest, full_mib, target_mib)

    def check(self, spec: BalloonSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        bound = facts.get("balloon_bound", "").strip()
        found = "virtio_balloon" if bound else "none"
        if spec.model == "virtio":
            return DriverCheck("balloon", "virtio", "virtio_balloon", found, bool(bound), bound)
        return DriverCheck("balloon", "none", "none", found, not bound)


DEVICE = Balloon()
