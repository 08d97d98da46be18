"""The --connect path's pure parts: vbench's subnets are configurable, a user's libvirt whose
networks (or this host's addresses) collide with them is refused with one line before anything is
added, and a guest's QEMU is found even when the daemon keeps its pid files elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from vbench.host import lab, netns

from vbench.host import networks
from vbench.core.errors import LabError


def _lab_in_child(env: dict) -> subprocess.CompletedProcess:
    code = ("import json; from vbench.host import lab, netns, networks\n"
            "print(json.dumps({'mgmt': networks.MGMT.xml(), 'test': networks.TEST.xml(), "
            "'allowed': [str(n) for n in netns.allowed_networks()]}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_importing_lab_does_not_change_the_traffic_guard():
    """netns's allow-list comes from topology; importing lab (or not) changes nothing."""
    code = ("import sys; from vbench.host import netns; before = netns.allowed_networks(); "
            "import vbench.host.lab; assert netns.allowed_networks() == before; "
            "print(len(before))")
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "3"  # loopback, management, test
    cp = subprocess.run([sys.executable, "-c", "import sys; import vbench.host.netns, vbench.guest.domain; "
                         "print('vbench.host.lab' in sys.modules)"], capture_output=True, text=True,
                        timeout=60)
    assert cp.stdout.strip() == "False", cp.stderr  # virt no longer needs lab


def test_subnets_come_from_the_environment():
    cp = _lab_in_child({"VBENCH_MGMT_SUBNET": "10.199.0.0/24", "VBENCH_TEST_SUBNET": "172.30.8.0/22"})
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    ip = ET.fromstring(out["test"]).find("ip")
    assert (ip.get("address"), ip.get("netmask")) == ("172.30.8.1", "255.255.252.0")
    rng = ET.fromstring(out["test"]).find("./ip/dhcp/range")
    assert (rng.get("start"), rng.get("end")) == ("172.30.8.10", "172.30.11.250")
    assert ET.fromstring(out["mgmt"]).find("ip").get("address") == "10.199.0.1"
    # the traffic guard follows: only the configured subnets (and loopback) may be dialled
    assert "10.199.0.0/24" in out["allowed"] and "172.30.8.0/22" in out["allowed"]
    assert "10.254.0.0/24" not in out["allowed"]


@pytest.mark.parametrize("value, why", [
    ("10.199.0.0/30", "64 to 65536"), ("8.8.8.0/24", "private"), ("10.199.0.1/24", "not an IPv4"),
    ("banana", "not an IPv4")])
def test_bad_subnets_are_one_line(value, why):
    cp = _lab_in_child({"VBENCH_MGMT_SUBNET": value})
    assert cp.returncode != 0 and why in cp.stderr and "VBENCH_MGMT_SUBNET" in cp.stderr


def test_overlapping_mgmt_and_test_are_refused():
    cp = _lab_in_child({"VBENCH_MGMT_SUBNET": "10.199.0.0/16", "VBENCH_TEST_SUBNET": "10.199.1.0/24"})
    assert cp.returncode != 0 and "overlap" in cp.stderr


class FakeNet:
    def __init__(self, name, xml, active=True):
        self._name, self._xml, self._active = name, xml, active

    def name(self):
        return self._name

    def XMLDesc(self):
        return self._xml

    def isActive(self):
        return self._active


class FakeConn:
    def __init__(self, nets):
        self.nets = nets

    def listAllNetworks(self):
        return self.nets


def _net(name, addr, mask="255.255.255.0", active=True):
    return FakeNet(name, f"<network><name>{name}</name><ip address='{addr}' netmask='{mask}'/>"
                         f"</network>", active)


@pytest.fixture
def no_host_addresses(monkeypatch):
    monkeypatch.setattr(networks, "_interface_subnets", lambda: [])


def test_a_user_network_that_overlaps_is_refused(no_host_addresses):
    conn = FakeConn([_net("default", "192.168.122.1"),
                     _net("users-lan", "10.254.0.1", "255.255.0.0", active=False)])
    with pytest.raises(LabError) as exc:
        networks.check_subnets(conn, "qemu:///system")
    msg = str(exc.value)
    assert "users-lan" in msg and "10.254.0.0/16" in msg and "VBENCH_MGMT_SUBNET" in msg
    assert "default" not in msg and "\n" not in msg


def test_distinct_user_networks_and_our_own_pass(no_host_addresses):
    conn = FakeConn([_net("default", "192.168.122.1"), _net(networks.MGMT.name, networks.MGMT.host_ip),
                     FakeNet("v6only", "<network><name>v6only</name><ip family='ipv6' "
                                       "address='fd00::1' prefix='64'/></network>")])
    networks.check_subnets(conn, "qemu:///system")


def test_our_network_up_with_another_subnet_is_refused(no_host_addresses):
    conn = FakeConn([_net(networks.MGMT.name, "10.77.0.1")])
    with pytest.raises(LabError, match="already up with 10.77.0.0/24"):
        networks.check_subnets(conn, "qemu:///system")


def test_host_addresses_count_only_for_a_local_libvirt(monkeypatch):
    monkeypatch.setattr(networks, "_interface_subnets", lambda: [
        ("lo", __import__("ipaddress").IPv4Network("127.0.0.0/8")),
        (networks.MGMT.bridge, __import__("ipaddress").IPv4Network(networks.MGMT.cidr)),
        ("eth0", __import__("ipaddress").IPv4Network("10.254.0.0/23"))])
    with pytest.raises(LabError, match="interface eth0"):
        networks.check_subnets(FakeConn([]), "qemu:///system")
    networks.check_subnets(FakeConn([]), "qemu+ssh://root@far/system")  # not this host's addresses


def test_interface_subnets_reads_ip_json():
    got = networks._interface_subnets()  # ip -j -4 addr of this namespace: at least loopback
    assert ("lo", __import__("ipaddress").IPv4Network("127.0.0.0/8")) in got
    assert netns.check_target("127.0.0.1") is None


def test_qemu_pid_found_by_guest_name_when_the_pidfile_is_elsewhere(tmp_path):
    from vbench.host import libvirtd

    def proc(pid, *argv):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    proc(10, "/usr/bin/qemu-system-x86_64", "-name", "guest=vbench-a-1,debug-threads=on")
    proc(11, "/usr/bin/qemu-system-x86_64", "-name", "guest=vbench-a,debug-threads=on")
    proc(12, "/bin/sh", "-c", "echo guest=vbench-b,")
    (tmp_path / "self").mkdir()
    assert libvirtd.qemu_pid_by_name("vbench-a", tmp_path) == 11
    assert libvirtd.qemu_pid_by_name("vbench-b", tmp_path) is None  # not a QEMU
    assert libvirtd.qemu_pid_by_name("vbench-c", tmp_path) is None
