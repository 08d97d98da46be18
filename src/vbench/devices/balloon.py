"""The memory balloon: virtio-balloon (with 1 s statistics for libvirt), or explicitly none.

Without an explicit ``<memballoon>`` element libvirt adds a virtio balloon by itself, so ``none``
is said out loud. In the guest, the balloon is the list of virtio devices bound to
``virtio_balloon``.
"""

from __future__ import annotations

from typing import Any, Literal

from vbench.devices.base import Device, DriverCheck, Fragment, GuestContext, Strict, virtio_or_none


class BalloonSpec(Strict):
    model: Literal["virtio", "none"] = "none"


def memballoon_xml(model: str) -> str:
    if model == "none":
        return "    <memballoon model='none'/>\n"
    return "    <memballoon model='virtio'>\n      <stats period='1'/>\n    </memballoon>\n"


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

    def check(self, spec: BalloonSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        bound = facts.get("balloon_bound", "").strip()
        found = "virtio_balloon" if bound else "none"
        if spec.model == "virtio":
            return DriverCheck("balloon", "virtio", "virtio_balloon", found, bool(bound), bound)
        return DriverCheck("balloon", "none", "none", found, not bound)


DEVICE = Balloon()
