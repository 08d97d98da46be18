"""virtio-vsock: a host-guest socket transport (AF_VSOCK), the alternative to TCP over virtio-net.

QEMU's vhost-vsock-pci needs the host's ``/dev/vhost-vsock`` (module vhost_vsock); without it
libvirt cannot start the guest. A variant with vsock is therefore refused before anything boots
on such a host (the project's own machines have none): it runs only where the device exists.
The guest CID is chosen by libvirt (``auto``) when the guest starts, so the live operation
:meth:`Vsock.guest_socket` reads it from the running domain's XML (``<cid auto='yes'
address='3'/>``). In the guest the virtio device is bound to ``vmw_vsock_virtio_transport``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Literal

from vbench.core.errors import GuestError
from vbench.devices.base import Device, Fragment, GuestContext, GuestSocket, Model, Strict

HOST_DEVICE = "/dev/vhost-vsock"
MAX_CID = 0xFFFFFFFE  # 0xFFFFFFFF is VMADDR_CID_ANY; 0-2 are the hypervisor, local and the host


def guest_cid(domain_xml: str) -> int:
    """The CID libvirt gave the guest, from its live domain XML; GuestError when there is none
    (an inactive domain's XML, or no vsock device): never a guessed CID."""
    try:
        cid = ET.fromstring(domain_xml).find("./devices/vsock/cid")
    except ET.ParseError as exc:
        raise GuestError(f"vsock: the domain XML does not parse: {exc}") from None
    value = "" if cid is None else cid.get("address", "")
    if not (value.isascii() and value.isdigit()) or not 3 <= int(value) <= MAX_CID:
        raise GuestError(f"vsock: the running domain has no guest CID (<cid address=...> is "
                         f"{value or 'missing'!r}): is the guest running with its vsock device?")
    return int(value)


class VsockSpec(Strict):
    model: Literal["virtio", "none"] = "virtio"


class Vsock(Device):
    kind = "vsock"
    spec = VsockSpec
    models = (
        Model("virtio", True, ("vmw_vsock_virtio_transport",),
              {"CONFIG_VIRTIO_VSOCKETS": "vmw_vsock_virtio_transport"}),
        Model("none", False),
    )
    headline_metrics = ("g2h_throughput", "h2g_throughput", "rtt_p50")

    def xml(self, spec: VsockSpec, ctx: GuestContext) -> Fragment:
        if spec.model == "none":
            return Fragment()
        return Fragment(devices="    <vsock model='virtio'>\n      <cid auto='yes'/>\n    </vsock>\n")

    def host_requirements(self, spec: VsockSpec) -> tuple[tuple[str, str], ...]:
        return ((HOST_DEVICE, "virtio"),) if spec.model == "virtio" else ()

    def guest_socket(self, spec: VsockSpec, guest: Any,
                     facts: dict[str, Any]) -> GuestSocket | None:
        if spec.model == "none":
            return None
        return GuestSocket("vsock", str(guest_cid(guest.live_xml())))


DEVICE = Vsock()
