"""The lab's two networks (management and test): names, bridges and subnets, and the check that
vbench's subnets collide with nothing of a user's libvirt or this host (``check_subnets``).

Management carries SSH (always a virtio NIC, idle while measuring); test carries the NIC under
test. Their subnets are configurable with ``VBENCH_MGMT_SUBNET`` and ``VBENCH_TEST_SUBNET`` so
that they cannot collide with a network of the user's libvirt or host. ``lab`` creates them,
``virt`` attaches guests to them, ``netns`` lets traffic go only to them and loopback: all read
this module, none of them sets anything in another on import.
"""

from __future__ import annotations

import ipaddress
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from vbench.core import procs
from vbench.core.errors import LabError


@dataclass(frozen=True)
class LabNetwork:
    """A libvirt network with DHCP and no uplink: in the lab's own namespace, or isolated in a
    user's libvirt (see :meth:`xml`)."""

    name: str
    bridge: str
    cidr: str  # a private IPv4 network of 64 addresses or more, e.g. "10.254.0.0/24"

    @property
    def _net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def host_ip(self) -> str:
        return str(self._net[1])

    def xml(self, dhcp_log: str | None = None, firewall: bool = True) -> str:
        """The network's XML. ``dhcp_log``: a file on this host for dnsmasq's log (its DHCP
        requests and answers, which otherwise go to a syslog this host may not have), so that a
        guest that got no lease can be told apart from one that never asked (vbench.host.bootlog).

        ``firewall``: True gives an isolated network (no ``<forward>``): libvirt keeps it off every
        other network with its own iptables rules, which a user's libvirtd needs, its host having
        real uplinks. Those rules sit on the path of every frame the NIC under test sends and cost
        a segmenting NIC (rtl8139, e1000) about a tenth of its throughput here (issue 25). False,
        for the lab's own namespace only (no uplink: the namespace is the isolation), gives
        forward mode 'open': libvirt adds no firewall rule, and ``lab up`` turns the namespace's
        IP forwarding back off (:data:`FORWARD_OPEN_SETS`). The guests' view stays an isolated
        network's: no default route is offered (``dhcp-option=3``), as libvirt does for isolated
        networks.

        dnsmasq is told ``no-ping``: before offering a fresh address it otherwise pings it and waits
        up to 3 s for an answer, on every boot (measured: each NIC's lease came 3.1 s after its
        carrier). Nothing else holds an address on these networks: dnsmasq is their only DHCP
        server and never offers a leased address again, and the only fixed addresses (the
        host's, the reference bench's raw guest) lie outside the range it offers."""
        net = self._net
        options = (["no-ping"] + ([f"log-facility={dhcp_log}"] if dhcp_log else [])
                   + ([] if firewall else ["dhcp-option=3"]))
        ns = " xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'"
        opts = ("  <dnsmasq:options>\n" + "".join(f"    <dnsmasq:option value={quoteattr(o)}/>\n"
                                                 for o in options) + "  </dnsmasq:options>\n")
        forward = "" if firewall else "  <forward mode='open'/>\n"
        return (f"<network{ns}>\n  <name>{self.name}</name>\n{forward}"
                f"  <bridge name='{self.bridge}' stp='off' delay='0'/>\n"
                f"  <ip address='{self.host_ip}' netmask='{net.netmask}'>\n"
                f"    <dhcp><range start='{net[10]}' end='{net[-6]}'/></dhcp>\n"
                f"  </ip>\n{opts}</network>\n")


# What libvirt does to the host when it starts a network in forward mode 'open': it turns IPv4
# forwarding on. The lab's own namespace turns it back off (its networks talk to the host only).
FORWARD_OPEN_SETS = "net.ipv4.ip_forward"


def forward_mode(xml: str) -> str:
    """A libvirt network's forward mode from its XML: "isolated" when it has no ``<forward>``."""
    try:
        fwd = ET.fromstring(xml).find("forward")
    except ET.ParseError:
        return "unknown"
    return "isolated" if fwd is None else (fwd.get("mode") or "nat")


def firewall_fact(mode: str) -> str:
    """What a run records of the test network's firewall (``Environment.test_network``), from its
    libvirt forward mode: whether libvirt's rules sit on the path of the NIC under test."""
    if mode == "open":
        return "no firewall rules (forward mode open, in vbench's own namespace)"
    if mode == "isolated":
        return "libvirt's firewall rules on the path (isolated network)"
    return f"forward mode {mode}: libvirt's firewall rules may be on the path"


# The only ranges a lab network may use: RFC 1918's private networks. Not loopback (127/8),
# link-local (169.254/16), shared (100.64/10), documentation, benchmarking or reserved ranges,
# which Python's is_private also admits, nor anything public.
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12",
                                                          "192.168.0.0/16"))
SUBNET_RULE = ("a private IPv4 network (inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) "
               "of 64 to 65536 addresses, e.g. 10.199.0.0/24")


def check_subnet(text: str) -> str:
    """``text`` as a lab network's subnet, or ValueError saying :data:`SUBNET_RULE`."""
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 network ({str(exc)[:60]}); {SUBNET_RULE}") from None
    if not any(net.subnet_of(r) for r in PRIVATE_RANGES) or not 16 <= net.prefixlen <= 26:
        raise ValueError(SUBNET_RULE)
    return str(net)


def _subnet(env: str, default: str) -> str:
    """The subnet of one of vbench's networks: ``default`` unless the environment names another
    (so that it cannot collide with a network of the user's libvirt or host)."""
    text = os.environ.get(env, "").strip() or default
    try:
        return check_subnet(text)
    except ValueError as exc:
        raise LabError(f"{env}={text[:40]!r}: vbench needs {exc}") from None


MGMT = LabNetwork("vbench-mgmt", "vbmgmt0", _subnet("VBENCH_MGMT_SUBNET", "10.254.0.0/24"))
TEST = LabNetwork("vbench-test", "vbtest0", _subnet("VBENCH_TEST_SUBNET", "10.254.1.0/24"))
NETWORKS = (MGMT, TEST)
if ipaddress.IPv4Network(MGMT.cidr).overlaps(ipaddress.IPv4Network(TEST.cidr)):
    raise LabError(f"VBENCH_MGMT_SUBNET ({MGMT.cidr}) and VBENCH_TEST_SUBNET ({TEST.cidr}) overlap; "
                   f"give them distinct subnets")


# ---- a user's libvirt: vbench's subnets must not collide with its networks or this host's ----

def _xml_subnets(xml: str) -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets of a libvirt network's XML (``<ip address= netmask=|prefix=>``)."""
    out = []
    for ip in ET.fromstring(xml).findall("ip"):
        if ip.get("family", "ipv4") != "ipv4" or not ip.get("address"):
            continue
        mask = ip.get("netmask") or ip.get("prefix") or "24"
        try:
            out.append(ipaddress.IPv4Network(f"{ip.get('address')}/{mask}", strict=False))
        except ValueError:
            continue
    return out


def _interface_subnets() -> list[tuple[str, ipaddress.IPv4Network]]:
    """(interface, subnet) of every IPv4 address in this network namespace."""
    res = procs.run(["ip", "-j", "-4", "addr", "show"], timeout=10, check=False)
    try:
        links = json.loads(res.stdout or "[]") if res.ok else []
    except ValueError:
        return []
    return [(link.get("ifname", "?"), ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}",
                                                             strict=False))
            for link in links for a in link.get("addr_info", []) if "local" in a]


def check_subnets(conn, uri: str) -> None:
    """Refuse to add vbench's networks to a user's libvirt where their subnets would collide with
    one of the user's libvirt networks (active or only defined) or, for a libvirt on this host,
    an address of this host. One line naming what collides and how to choose other subnets."""
    from urllib.parse import urlsplit

    ours = {n.name: n for n in NETWORKS}
    problems = []
    for net in conn.listAllNetworks():
        name, subnets = net.name(), _xml_subnets(net.XMLDesc())
        if name in ours:
            want = ipaddress.IPv4Network(ours[name].cidr)
            if net.isActive() and subnets and want not in subnets:
                problems.append(f"its network {name} is already up with {subnets[0]}, not {want} "
                                f"(run `vbench lab down` to remove it first)")
            continue
        problems += [f"{o.name} {o.cidr} overlaps network {name!r} ({sn})"
                     for sn in subnets for o in NETWORKS
                     if sn.overlaps(ipaddress.IPv4Network(o.cidr))]
    if not urlsplit(uri).hostname:  # the daemon is on this host: its addresses count too
        bridges = {n.bridge for n in NETWORKS}
        problems += [f"{o.name} {o.cidr} overlaps {sn} on interface {ifname}"
                     for ifname, sn in _interface_subnets() if ifname not in bridges
                     and not sn.is_loopback for o in NETWORKS
                     if sn.overlaps(ipaddress.IPv4Network(o.cidr))]
    if problems:
        raise LabError(f"vbench's subnets collide in {uri}: {'; '.join(problems)}; choose free "
                       f"private subnets with VBENCH_MGMT_SUBNET and VBENCH_TEST_SUBNET "
                       f"(e.g. 10.199.0.0/24 and 10.199.1.0/24)")
