"""Pure parts of the lab: network XML, the probe initramfs archive, the traffic guard, the state
record. Nothing here starts a daemon, a namespace or a guest."""

from __future__ import annotations

import ipaddress
import json
import xml.etree.ElementTree as ET

import pytest

from vbench.host import lab, netns

from vbench.host import accel
from vbench.host import initramfs

from vbench.host import networks
from vbench.core import paths
from vbench.core.errors import LabError, StoreError, UserError


# ---- LabNetwork -------------------------------------------------------------------------------

@pytest.mark.parametrize("net", networks.NETWORKS, ids=lambda n: n.name)
def test_lab_network_xml(net):
    root = ET.fromstring(net.xml())
    assert root.tag == "network"
    assert root.findtext("name") == net.name
    br = root.find("bridge")
    assert (br.get("name"), br.get("stp"), br.get("delay")) == (net.bridge, "off", "0")
    # Isolated: no <forward> means no NAT and no route to the outside world.
    assert root.find("forward") is None
    ip = root.find("ip")
    assert ip.get("address") == net.host_ip and ip.get("netmask") == "255.255.255.0"
    rng = root.find("./ip/dhcp/range")
    start, end = ipaddress.ip_address(rng.get("start")), ipaddress.ip_address(rng.get("end"))
    subnet = ipaddress.ip_network(net.cidr)
    assert start in subnet and end in subnet and start < end
    assert ipaddress.ip_address(net.host_ip) not in range_of(start, end)


DNSMASQ = "{http://libvirt.org/schemas/network/dnsmasq/1.0}"


@pytest.mark.parametrize("net", networks.NETWORKS, ids=lambda n: n.name)
def test_lab_network_in_own_namespace_has_no_firewall(net):
    """The lab's own namespace (issue 25): forward mode 'open' (libvirt adds no firewall rule on
    the path of the NIC under test), the guests still offered no default route, as on an
    isolated network, and dnsmasq's log kept."""
    root = ET.fromstring(net.xml(dhcp_log="/var/lib/vbench/lab/dhcp.log", firewall=False))
    assert root.find("forward").get("mode") == "open"
    opts = [o.get("value") for o in root.iter(f"{DNSMASQ}option")]
    assert opts == ["no-ping", "log-facility=/var/lib/vbench/lab/dhcp.log", "dhcp-option=3"]
    assert networks.forward_mode(ET.tostring(root, encoding="unicode")) == "open"
    # a user's libvirt keeps the isolated network; dnsmasq there offers without its 3 s ping too
    assert networks.forward_mode(net.xml()) == "isolated"
    assert [o.get("value") for o in ET.fromstring(net.xml()).iter(f"{DNSMASQ}option")] == [
        "no-ping"]
    assert [o.get("value") for o in ET.fromstring(net.xml(firewall=False)).iter(
        f"{DNSMASQ}option")] == ["no-ping", "dhcp-option=3"]


@pytest.mark.parametrize("net", networks.NETWORKS, ids=lambda n: n.name)
def test_every_fixed_address_on_a_lab_network_is_outside_the_dhcp_range(net):
    """no-ping is safe only while dnsmasq never offers an address something holds without a
    lease: the host's own (and the reference bench's raw guest, RAW_GUEST_HOST = -4)."""
    import ipaddress

    rng = ET.fromstring(net.xml()).find("ip/dhcp/range")
    lo, hi = (ipaddress.IPv4Address(rng.get(k)) for k in ("start", "end"))
    cidr = ipaddress.IPv4Network(net.cidr)
    for fixed in (ipaddress.IPv4Address(net.host_ip), cidr[-4]):
        assert not lo <= fixed <= hi, fixed


@pytest.mark.parametrize("xml,mode,word", [
    ("<network><forward mode='open'/></network>", "open", "no firewall rules"),
    ("<network><name>n</name></network>", "isolated", "libvirt's firewall rules on the path"),
    ("<network><forward/></network>", "nat", "may be on the path"),
    ("<network><forward mode='route'/></network>", "route", "may be on the path"),
    ("<network><forward", "unknown", "may be on the path"),
])
def test_the_recorded_firewall_fact_follows_the_forward_mode(xml, mode, word):
    assert networks.forward_mode(xml) == mode
    assert word in networks.firewall_fact(mode)


class Conn:
    """A libvirt connection as lab._drop_firewalled sees it: networks by XML, running domains."""

    def __init__(self, nets: dict, running: int = 0):
        self.nets, self.running = nets, running

    def numOfDomains(self):
        return self.running


@pytest.fixture
def fake_nets(monkeypatch):
    from vbench.host import libvirtd

    destroyed: list[str] = []
    monkeypatch.setattr(libvirtd, "network_xml", lambda conn, name: conn.nets.get(name))
    monkeypatch.setattr(libvirtd, "destroy_network",
                        lambda conn, name: destroyed.append(name) or conn.nets.pop(name) or True)
    return destroyed


def test_a_firewalled_lab_network_from_an_older_vbench_is_started_again(fake_nets):
    said: list[str] = []
    old = networks.TEST.xml()  # isolated: what vbench before issue 25 started
    conn = Conn({networks.TEST.name: old})
    lab._drop_firewalled(conn, networks.TEST, lab.LabState(networks=[networks.TEST.name]), said.append)
    assert fake_nets == [networks.TEST.name] and "starting it again without them" in said[0]


@pytest.mark.parametrize("case", ["guests running", "not the lab's", "already open", "absent"])
def test_a_lab_network_is_left_alone_unless_ours_idle_and_firewalled(fake_nets, case):
    said: list[str] = []
    xml = networks.TEST.xml(firewall=case != "already open")
    conn = Conn({} if case == "absent" else {networks.TEST.name: xml},
                running=2 if case == "guests running" else 0)
    recorded = [] if case == "not the lab's" else [networks.TEST.name]
    lab._drop_firewalled(conn, networks.TEST, lab.LabState(networks=recorded), said.append)
    assert fake_nets == []
    if case == "guests running":
        assert len(said) == 1 and "guests are running" in said[0]
    else:
        assert said == []


def test_daemon_facts_say_unknown_when_libvirt_cannot_be_read(monkeypatch):
    from vbench.host import libvirtd

    def refuse(uri):
        raise LabError("no libvirtd")

    monkeypatch.setattr(libvirtd, "open_connection", refuse)
    assert libvirtd.daemon_facts("qemu:///system") == {"libvirt_version": "unknown",
                                                       "test_network": "unknown"}


def range_of(start, end):
    return [ipaddress.ip_address(i) for i in range(int(start), int(end) + 1)]


def test_management_and_test_networks_are_distinct():
    assert networks.MGMT.name == "vbench-mgmt" and networks.TEST.name == "vbench-test"
    assert networks.MGMT.cidr == "10.254.0.0/24" and networks.TEST.cidr == "10.254.1.0/24"
    assert networks.MGMT.host_ip == "10.254.0.1"
    assert len({n.bridge for n in networks.NETWORKS}) == 2
    assert all(len(n.bridge) <= 15 for n in networks.NETWORKS)  # IFNAMSIZ - 1


# ---- _newc: the cpio archive the kernel unpacks as initramfs ----------------------------------

def parse_newc(data: bytes) -> list[tuple[str, int, bytes]]:
    """A strict reader of cpio 'newc' archives (the format of the kernel's initramfs)."""
    out, off = [], 0
    while True:
        assert off % 4 == 0, f"header at {off} is not 4-byte aligned"
        hdr = data[off:off + 110]
        assert len(hdr) == 110, "truncated header"
        assert hdr[:6] == b"070701", f"bad magic {hdr[:6]!r} at {off}"
        fields = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, filesize, dmaj, dmin, rdmaj, rdmin, namesize, check = fields
        assert check == 0
        name_start = off + 110
        name = data[name_start:name_start + namesize]
        assert name.endswith(b"\0") and b"\0" not in name[:-1]
        off = name_start + namesize
        off += -off % 4
        body = data[off:off + filesize]
        assert len(body) == filesize
        off += filesize
        off += -off % 4
        if name[:-1] == b"TRAILER!!!":
            assert off == len(data), "bytes after the trailer"
            return out
        out.append((name[:-1].decode(), mode, body))


def test_newc_round_trip():
    entries = [("bin", 0o040755, b""), ("bin/x", 0o100755, b"abc"), ("init", 0o100755, b"#!/bin/sh\n"),
               ("a-name-of-odd-len", 0o100644, b"12345")]
    data = initramfs.newc(entries)
    assert data.startswith(b"070701")
    assert len(data) % 4 == 0
    assert parse_newc(data) == entries
    assert b"TRAILER!!!\0" in data


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 4097])
def test_newc_alignment_for_every_size(size):
    body = bytes(range(256)) * (size // 256 + 1)
    entries = [("f" * (size % 7 + 1), 0o100644, body[:size]), ("next", 0o100600, b"z")]
    assert parse_newc(initramfs.newc(entries)) == entries


def test_newc_inodes_are_distinct():
    data = initramfs.newc([("a", 0o100644, b"1"), ("b", 0o100644, b"2")])
    inos, off = [], 0
    while off < len(data):
        hdr = data[off:off + 110]
        inos.append(int(hdr[6:14], 16))
        namesize, filesize = int(hdr[94:102], 16), int(hdr[54:62], 16)
        off += 110 + namesize
        off += -off % 4 + filesize
        off += -off % 4
    assert len(inos) == 3 and len(set(inos)) == 3


def test_probe_initramfs_has_init_and_busybox():
    from pathlib import Path

    if not Path("/bin/busybox").exists():
        with pytest.raises(LabError, match="busybox"):
            accel.probe_initramfs()
        return
    entries = {name: (mode, body) for name, mode, body in parse_newc(accel.probe_initramfs())}
    assert set(entries) == {"bin", "bin/busybox", "init"}
    assert entries["bin"][0] == 0o040755
    assert entries["init"][0] == 0o100755 and accel.PROBE_MARKER.encode() in entries["init"][1]
    assert entries["bin/busybox"][1] == Path("/bin/busybox").read_bytes()


# ---- netns.check_target: traffic only to loopback and the lab's subnets -------------------------

@pytest.mark.parametrize("addr", ["127.0.0.1", "127.0.0.53", "10.254.0.5", "10.254.1.7",
                                  "10.254.0.1", "10.254.1.250"])
def test_check_target_allows_loopback_and_lab(addr):
    netns.check_target(addr)  # no exception


@pytest.mark.parametrize("addr", ["8.8.8.8", "192.168.1.1", "10.0.0.1", "10.254.2.1",
                                  "10.255.0.1", "169.254.169.254", "0.0.0.0", "::1"])
def test_check_target_refuses_everything_else(addr):
    with pytest.raises(LabError) as exc:
        netns.check_target(addr)
    msg = str(exc.value)
    assert f"refusing to send traffic to {addr}" in msg and "\n" not in msg
    assert isinstance(exc.value, UserError)


def test_check_target_refuses_host_names_as_lab_error():
    with pytest.raises(LabError):
        netns.check_target("example.com")


def test_connect_refuses_before_dialling():
    with pytest.raises(LabError):
        netns.connect("8.8.8.8", 53, None, timeout=0.1)


def test_exec_argv():
    assert netns.exec_argv("vbench", ["ip", "a"]) == ["ip", "netns", "exec", "vbench", "ip", "a"]
    assert netns.exec_argv(None, ["ip", "a"]) == ["ip", "a"]


# ---- LabState: the record of what the lab started -------------------------------------------------

@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "vbhome"))
    return tmp_path / "vbhome"


def test_lab_state_round_trip(home):
    assert paths.lab_dir() == home / "lab"
    s = lab.LabState(uri="qemu:///system", netns="vbench", netns_created=True,
                     daemons={"libvirtd": {"pid": 4242, "starttime": 99, "what": "libvirtd"}},
                     kvm_original={"uid": 0, "gid": 0, "mode": 0o600},
                     networks=["vbench-mgmt", "vbench-test"],
                     accelerator={"key": "abc", "name": "tcg", "reason": "test"})
    s.save()
    raw = json.loads((home / "lab" / "state.json").read_text())
    assert raw["schema_version"] == lab.STATE_VERSION
    assert lab.LabState.load() == s
    s.clear()
    assert not (home / "lab" / "state.json").exists()
    assert lab.LabState.load() == lab.LabState()  # no record: nothing started
    s.clear()  # clearing twice is fine


def test_lab_state_corrupt_is_a_lab_error(home):
    (home / "lab").mkdir(parents=True)
    (home / "lab" / "state.json").write_text("{not json")
    with pytest.raises(LabError) as exc:
        lab.LabState.load()
    assert "lab down --force" in str(exc.value) and "\n" not in str(exc.value)


def test_lab_state_unknown_field_is_a_lab_error(home):
    (home / "lab").mkdir(parents=True)
    (home / "lab" / "state.json").write_text('{"schema_version": 1, "surprise": 1}')
    with pytest.raises(LabError):
        lab.LabState.load()


def test_lab_state_other_schema_version_refused(home):
    (home / "lab").mkdir(parents=True)
    (home / "lab" / "state.json").write_text('{"schema_version": 99, "uri": "qemu:///system"}')
    with pytest.raises(LabError):
        lab.LabState.load()


def test_lab_state_save_failure_is_a_store_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "file"))
    with pytest.raises((StoreError, LabError)):  # a home that is no directory: refused first
        lab.LabState().save()


def test_accelerator_domain_type():
    assert accel.Accelerator("kvm", "").domain_type == "kvm"
    assert accel.Accelerator("tcg", "").domain_type == "qemu"


def test_forced_accelerator_needs_no_libvirt(monkeypatch):
    monkeypatch.setenv("VBENCH_ACCEL", "tcg")
    acc = lab.Lab("test:///nowhere", None, lab.LabState()).host.accelerator(None)
    assert acc.name == "tcg" and "VBENCH_ACCEL=tcg" in acc.reason
    acc = lab.Lab("test:///nowhere", None, lab.LabState()).host.accelerator(None, override="kvm")
    assert acc.name == "kvm" and "--accel=kvm" in acc.reason
