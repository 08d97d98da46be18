"""The NIC under test, on the lab's test network (SSH goes over a separate management NIC).

virtio-net is paravirtual; QEMU's e1000, e1000e and rtl8139 are emulated. In the guest the NIC is
found by its MAC address (derived from the guest name) and must be bound to the model's driver.

Knobs of virtio-net: ``queues`` (multiqueue) and ``vhost`` (true: the in-kernel vhost-net backend,
false: QEMU's own userspace backend; unset: libvirt's choice, vhost where /dev/vhost-net exists).
A variant asking for vhost on a host without /dev/vhost-net is refused before anything boots,
never measured silently without it.
"""

from __future__ import annotations

from typing import Any, Literal
from xml.sax.saxutils import quoteattr

from pydantic import Field, model_validator

from vbench.devices.base import Device, DriverCheck, Fragment, GuestContext, Model, Strict


class NicSpec(Strict):
    """The NIC under test, on the lab's test network (SSH goes over a separate management NIC)."""

    model: Literal["virtio", "e1000", "e1000e", "rtl8139"] = "virtio"
    queues: int | None = Field(None, ge=1, le=64, description="virtio-net multiqueue")
    vhost: bool | None = Field(None, description="true: vhost-net backend; false: QEMU userspace")

    @model_validator(mode="after")
    def _virtio_knobs(self) -> "NicSpec":
        for knob in ("queues", "vhost"):
            if getattr(self, knob) is not None and self.model != "virtio":
                raise ValueError(f"{knob}: only virtio NICs have {knob} (model is {self.model!r})")
        return self


def interface_xml(network: str, mac: str, model: str, link_down: bool = False,
                  queues: int | None = None, vhost: bool | None = None) -> str:
    link = "      <link state='down'/>\n" if link_down else ""
    attrs = ("" if vhost is None else f" name='{'vhost' if vhost else 'qemu'}'") + (
        f" queues='{queues}'" if queues else "")
    driver = f"      <driver{attrs}/>\n" if attrs else ""
    return (f"    <interface type='network'>\n"
            f"      <mac address='{mac}'/>\n"
            f"      <source network={quoteattr(network)}/>\n"
            f"      <model type='{model}'/>\n{driver}{link}"
            f"    </interface>\n")


class Nic(Device):
    kind = "nic"
    spec = NicSpec
    models = (
        Model("virtio", True, ("virtio_net",), {"CONFIG_VIRTIO_NET": "virtio_net"}),
        Model("e1000", False, ("e1000",), {"CONFIG_E1000": "e1000"}),
        Model("e1000e", False, ("e1000e",), {"CONFIG_E1000E": "e1000e"}),
        # QEMU's rtl8139 is an RTL8139C+; Linux binds 8139cp to it (8139too would also do).
        Model("rtl8139", False, ("8139cp", "8139too"), {"CONFIG_8139CP": "8139cp"}),
    )
    presets = {"virtio": "virtio", "emulated": "e1000"}
    headline_metrics = ("throughput", "pps", "rtt_p50")
    facts_script = r"""for n in /sys/class/net/*; do
  [ -e "$n/device/driver" ] || continue
  echo "nic=$(cat "$n/address") $(basename "$n") $(basename "$(readlink -f "$n/device/driver")")"
done
"""

    def xml(self, spec: NicSpec, ctx: GuestContext) -> Fragment:
        return Fragment(interfaces=interface_xml(ctx.test_net, ctx.test_mac, spec.model,
                                                 queues=spec.queues, vhost=spec.vhost))

    def host_requirements(self, spec: NicSpec) -> tuple[tuple[str, str], ...]:
        return (("/dev/vhost-net", "vhost: true"),) if spec.vhost else ()

    def facts_init(self) -> dict[str, Any]:
        return {"nics": {}}

    def parse_fact(self, key: str, value: str, facts: dict[str, Any]) -> bool:
        if key != "nic":
            return False
        parts = value.split()
        if len(parts) == 3:
            facts["nics"][parts[0].lower()] = (parts[1], parts[2])
        return True

    def check(self, spec: NicSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        want = self.model(spec).drivers
        nic = facts["nics"].get(ctx.test_mac.lower())
        found = nic[1] if nic else "no NIC with the test MAC"
        return DriverCheck("nic", spec.model, "|".join(want), found, found in want,
                           nic[0] if nic else "")


DEVICE = Nic()
