"""virtio-vsock: a host-guest socket transport (AF_VSOCK), the alternative to TCP over virtio-net.

QEMU's vhost-vsock-pci needs the host's ``/dev/vhost-vsock`` (module vhost_vsock); without it
libvirt cannot start the guest. A variant with vsock is therefore refused before anything boots
on such a host (the project's own machines have none): it runs only where the device exists.
The guest CID is chosen by libvirt (``auto``). In the guest the virtio device is bound to
``vmw_vsock_virtio_transport``.
"""

from __future__ import annotations

from typing import Literal

from vbench.devices.base import Device, Fragment, GuestContext, Model, Strict

HOST_DEVICE = "/dev/vhost-vsock"


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
    headline_metrics = ()

    def xml(self, spec: VsockSpec, ctx: GuestContext) -> Fragment:
        if spec.model == "none":
            return Fragment()
        return Fragment(devices="    <vsock model='virtio'>\n      <cid auto='yes'/>\n    </vsock>\n")

    def host_requirements(self, spec: VsockSpec) -> tuple[tuple[str, str], ...]:
        return ((HOST_DEVICE, "virtio"),) if spec.model == "virtio" else ()


DEVICE = Vsock()
