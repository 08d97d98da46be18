"""`vbench lab down` removes exactly what vbench made; `lab up` brings it all back."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from .conftest import vbench

pytestmark = pytest.mark.integration


def test_lab_down_leaves_nothing_and_up_restores(lab_ready):
    from vbench.host import lab, sched
    from vbench.host import networks
    from vbench.core import procs

    state = lab.LabState.load()
    if not state.daemons.get("libvirtd"):
        pytest.skip("the lab runs on a libvirt vbench did not start (--connect): nothing to stop")
    daemons = [procs.ProcRef.from_dict(d) for d in state.daemons.values()]
    dnsmasq = []
    for net in networks.NETWORKS:
        pid = procs.read_pidfile(Path(f"/run/libvirt/network/{net.name}.pid"))
        if pid:
            dnsmasq.append(procs.ref(pid))
    kvm_orig = state.kvm_original
    turned_off = state.autogroup_original == "1"
    assert all(procs.alive(d) for d in daemons)
    if turned_off:
        assert sched.read() == "0"

    out = vbench("lab", "down").stdout
    assert "stopped libvirtd" in out
    assert not any(procs.alive(d) for d in daemons), "a daemon vbench started is still running"
    assert not any(d and procs.alive(d) for d in dnsmasq), "a network's dnsmasq survived"
    if state.netns_created:
        assert "vbench" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                              text=True).stdout.split()
    assert not (Path(os.environ.get("VBENCH_HOME", "/var/lib/vbench")) / "lab/state.json").exists()
    if kvm_orig and Path("/dev/kvm").exists():
        st = Path("/dev/kvm").stat()
        assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (kvm_orig["gid"], kvm_orig["mode"])
    status = vbench("lab", "status").stdout
    assert "not running" in status
    if turned_off:  # the lab turned autogroup off: down turns it on again
        assert sched.read() == "1" and "autogroup on" in status

    vbench("lab", "up", timeout=300)
    status = vbench("lab", "status").stdout
    assert "libvirtd" in status and "started by vbench" in status
    assert "vbench-mgmt" in status and "active" in status
    if turned_off:  # on again after down: up turns it off again, and says so
        assert sched.read() == "0" and "autogroup off (turned off by vbench" in status


def test_the_lab_namespace_puts_no_firewall_on_the_path(lab_ready):
    """Issue 25: libvirt's isolated-network rules in the lab's namespace cost a segmenting NIC
    about a tenth of its throughput. The lab's own namespace has no rule and no forwarding (the
    namespace is the isolation), and that is what a run records."""
    from vbench.host import hosts, lab, libvirtd, netns, networks

    state = lab.LabState.load()
    if state.netns != lab.NETNS:
        pytest.skip("the lab runs on a libvirt vbench did not start (--connect): its rules stay")
    for tool in ("iptables-save", "ip6tables-save"):
        rules = subprocess.run(["ip", "netns", "exec", lab.NETNS, tool], capture_output=True,
                               text=True, check=True).stdout
        assert [r for r in rules.splitlines() if r.startswith("-A")] == [], tool
    assert netns.ip_forwarding(lab.NETNS) is False
    facts = hosts.local_facts(state.uri)
    assert facts["test_network"] == networks.firewall_fact("open")
    conn = libvirtd.open_connection(state.uri)
    try:
        assert networks.forward_mode(libvirtd.network_xml(conn, networks.MGMT.name)) == "open"
    finally:
        conn.close()
