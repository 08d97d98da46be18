"""The lab's two networks (management and test): names, bridges and subnets. A leaf module.

Management carries SSH (always a virtio NIC, idle while measuring); test carries the NIC under
test. Their subnets are configurable with ``VBENCH_MGMT_SUBNET`` and ``VBENCH_TEST_SUBNET`` so
that they cannot collide with a network of the user's libvirt or host. ``lab`` creates them,
``virt`` attaches guests to them, ``netns`` lets traffic go only to them and loopback: all read
this module, none of them sets anything in another on import.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from vbench.core.errors import LabError


@dataclass(frozen=True)
class LabNetwork:
    """An isolated libvirt network (no forwarding) with DHCP; lives in the lab namespace."""

    name: str
    bridge: str
    cidr: str  # a private IPv4 network of 64 addresses or more, e.g. "10.254.0.0/24"

    @property
    def _net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def host_ip(self) -> str:
        return str(self._net[1])

    def xml(self) -> str:
        net = self._net
        return (f"<network>\n  <name>{self.name}</name>\n"
                f"  <bridge name='{self.bridge}' stp='off' delay='0'/>\n"
                f"  <ip address='{self.host_ip}' netmask='{net.netmask}'>\n"
                f"    <dhcp><range start='{net[10]}' end='{net[-6]}'/></dhcp>\n"
                f"  </ip>\n</network>\n")


def _subnet(env: str, default: str) -> str:
    """The subnet of one of vbench's networks: ``default`` unless the environment names another
    (so that it cannot collide with a network of the user's libvirt or host)."""
    text = os.environ.get(env, "").strip() or default
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise LabError(f"{env}={text!r}: not an IPv4 network ({exc}); write e.g. 10.199.0.0/24") from None
    if not net.is_private or net.num_addresses < 64 or net.prefixlen < 16:
        raise LabError(f"{env}={text}: vbench needs a private IPv4 network of 64 to 65536 "
                       f"addresses for its isolated network, e.g. 10.199.0.0/24")
    return str(net)


MGMT = LabNetwork("vbench-mgmt", "vbmgmt0", _subnet("VBENCH_MGMT_SUBNET", "10.254.0.0/24"))
TEST = LabNetwork("vbench-test", "vbtest0", _subnet("VBENCH_TEST_SUBNET", "10.254.1.0/24"))
NETWORKS = (MGMT, TEST)
if ipaddress.IPv4Network(MGMT.cidr).overlaps(ipaddress.IPv4Network(TEST.cidr)):
    raise LabError(f"VBENCH_MGMT_SUBNET ({MGMT.cidr}) and VBENCH_TEST_SUBNET ({TEST.cidr}) overlap; "
                   f"give them distinct subnets")
