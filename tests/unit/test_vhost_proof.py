"""The vhost proof: on the host where QEMU runs, does the NIC under test use vhost-net?

Inputs are crafted in the shape of a Debian 12 lab (libvirt 9.0, QEMU 7.2; this machine has no
/dev/vhost-net to capture from): QEMU's NUL-separated /proc/<pid>/cmdline with libvirt's JSON
``-netdev``/``-device`` arguments, ``ls -l /proc/<pid>/fd``, ``ps -eLo comm=`` and a QEMU log
(tests/data/crafted-vhost-*). The management NIC is virtio with vhost in every listing: the proof
must look at the NIC under test, not at the process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vbench.core.errors import DeviceMismatch
from vbench.core.metrics import CommandResult
from vbench.devices import GuestContext, HostProof
from vbench.devices.nic import (DEVICE, NicSpec, netdev_for_mac, open_fds, qemu_options,
                                qemu_pid_in_ps, vhost_evidence, vhost_fallback, vhost_on_host,
                                vhost_threads)
from vbench.guest import verify

DATA = Path(__file__).resolve().parents[1] / "data"
TEST_MAC = "52:54:00:c4:9b:12"
MGMT_MAC = "52:54:00:3e:01:7a"
NAME = "vbench-20261205-071500-net-vhost-0-vhost-on"
PID = 4242


def data(name: str) -> str:
    return (DATA / f"crafted-vhost-{name}").read_text()


def argv(which: str) -> list[str]:
    return data(f"cmdline-{which}.bin").split("\0")


# ---- pure parsing -------------------------------------------------------------------------------

def test_qemu_options_reads_libvirts_json_and_qemus_keyval_form():
    assert qemu_options('{"type":"tap","fd":"36","vhost":true,"vhostfd":"37","id":"hostnet1"}') == {
        "type": "tap", "fd": "36", "vhost": "on", "vhostfd": "37", "id": "hostnet1"}
    assert qemu_options("tap,fd=36,id=hostnet1,vhost=on,vhostfd=37") == {
        "type": "tap", "fd": "36", "id": "hostnet1", "vhost": "on", "vhostfd": "37"}
    assert qemu_options("{not json") == {}


def test_the_netdev_is_the_one_behind_the_test_mac_not_the_management_nic():
    on = netdev_for_mac(argv("on"), TEST_MAC.upper())
    assert on is not None and (on["id"], on["vhostfd"]) == ("hostnet1", "37")
    off = netdev_for_mac(argv("off"), TEST_MAC)
    assert off == {"type": "tap", "fd": "36", "id": "hostnet1"}
    mgmt = netdev_for_mac(argv("off"), MGMT_MAC)
    assert mgmt is not None and mgmt["vhost"] == "on"   # the management NIC has vhost regardless
    assert netdev_for_mac(argv("on"), "52:54:00:00:00:01") is None


def test_old_keyval_command_line():
    old = ["/usr/bin/qemu-system-x86_64", "-netdev", "tap,fd=36,id=hostnet1,vhost=on,vhostfd=37",
           "-device", f"virtio-net-pci,netdev=hostnet1,id=net1,mac={TEST_MAC},bus=pci.0,addr=0x4"]
    nd = netdev_for_mac(old, TEST_MAC)
    assert nd is not None and nd["vhostfd"] == "37"


def test_open_fds_from_ls_l():
    fds = open_fds(data("fd-on.txt"))
    assert fds["35"] == fds["37"] == "/dev/vhost-net" and fds["36"] == "/dev/net/tun"
    assert "total" not in fds and fds["31"] == "socket:[418226]"


def test_vhost_threads_counts_only_this_qemus_workers():
    assert vhost_threads(data("ps-threads.txt"), PID) == 4
    assert vhost_threads(data("ps-threads.txt"), 97) == 0   # vhost-977 is another QEMU's


def test_evidence_vhost_on_is_the_test_nics_own_fd():
    nd = netdev_for_mac(argv("on"), TEST_MAC)
    assert nd is not None
    assert vhost_evidence(nd, PID, data("fd-on.txt"), None) == (
        True, "/dev/vhost-net open as fd 37 (netdev hostnet1)")


def test_evidence_vhost_off_is_none_although_the_process_has_vhost_net_open():
    nd = netdev_for_mac(argv("off"), TEST_MAC)
    assert nd is not None
    # fd 35 (the management NIC's) is /dev/vhost-net and vhost-4242 threads exist: not the test NIC's
    assert vhost_evidence(nd, PID, data("fd-off.txt"), data("ps-threads.txt")) == (False, "none")


def test_evidence_a_vhostfd_that_is_not_vhost_net_is_not_vhost():
    nd = {"type": "tap", "fd": "36", "vhost": "on", "vhostfd": "37", "id": "hostnet1"}
    used, why = vhost_evidence(nd, PID, data("fd-off.txt"), data("ps-threads.txt"))
    assert used is False and "vhostfd 37 of netdev hostnet1 is not /dev/vhost-net" == why


def test_evidence_multiqueue_needs_every_vhostfd():
    nd = {"type": "tap", "fds": "36:38", "vhost": "on", "vhostfds": "35:37", "id": "hostnet1"}
    assert vhost_evidence(nd, PID, data("fd-on.txt"), None)[0] is True
    nd["vhostfds"] = "37:39"
    assert vhost_evidence(nd, PID, data("fd-on.txt"), None)[0] is False


def test_evidence_falls_back_to_the_worker_thread_when_fds_cannot_be_read():
    nd = netdev_for_mac(argv("on"), TEST_MAC)
    assert nd is not None
    assert vhost_evidence(nd, PID, None, data("ps-threads.txt")) == (
        True, "vhost-4242 worker thread (netdev hostnet1 asks for vhost)")
    used, why = vhost_evidence(nd, 97, None, data("ps-threads.txt"))
    assert used is None and "vhost-97" in why
    assert vhost_evidence(nd, PID, None, None)[0] is None


def test_qemu_opened_vhost_net_itself():
    nd = {"type": "tap", "fd": "36", "vhost": "on", "id": "hostnet1"}
    fds = "lrwx------ 1 root root 64 Dec  5 07:15 40 -> /dev/vhost-net\n"
    assert vhost_evidence(nd, PID, fds, None) == (
        True, "/dev/vhost-net open as fd 40 (netdev hostnet1 asks for vhost)")


def test_fallback_line_in_qemus_log():
    assert vhost_fallback(data("qemu-log-fallback.txt")) == (
        "2026-12-05T07:15:09.873001Z qemu-system-x86_64: unable to start vhost net: 38: falling "
        "back on userspace virtio")
    assert vhost_fallback("2026-12-05 07:15:01.123+0000: starting up libvirt\n") is None


def test_qemu_pid_from_ps():
    ps = (f"    1 /sbin/init\n 4242 /usr/bin/qemu-system-x86_64 -name guest={NAME},debug-threads=on "
          f"-S\n 4300 grep guest={NAME},\n 4301 /usr/bin/qemu-system-x86_64 -name guest={NAME}-a1,"
          f"debug-threads=on\n")
    assert qemu_pid_in_ps(ps, NAME) == 4242
    assert qemu_pid_in_ps(ps, NAME + "-a1") == 4301
    assert qemu_pid_in_ps(ps, "vbench-other") is None


# ---- on the host, through the Host interface ----------------------------------------------------

class FakeHost:
    """The seam: ``qemu_pid`` and ``run(argv, timeout)`` answered from the captured listings."""

    def __init__(self, cmdline: str, fds: str | None, pid: int | None = PID,
                 log: str = "", ps_args: str = "") -> None:
        self.pid, self.log, self.ps_args = pid, log, ps_args
        self.cmdline, self.fds = cmdline, fds
        self.calls: list[list[str]] = []

    def qemu_pid(self, name: str) -> int | None:
        return self.pid

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        self.calls.append(argv)
        out: str | None = {
            ("cat", f"/proc/{PID}/cmdline"): self.cmdline,
            ("ls", "-l", f"/proc/{PID}/fd"): self.fds,
            ("ps", "-eLo", "comm="): data("ps-threads.txt"),
            ("ps", "-ww", "-eo", "pid=,args="): self.ps_args,
            ("tail", "-c", "65536", f"/var/log/libvirt/qemu/{NAME}.log"): self.log,
        }.get(tuple(argv))
        if out is None:
            return CommandResult(" ".join(argv), 1, "", "Permission denied", 0.01)
        return CommandResult(" ".join(argv), 0, out, "", 0.01)


def proof(vhost: bool | None, host: FakeHost) -> HostProof | None:
    return DEVICE.host_proof(NicSpec(model="virtio", vhost=vhost), host, NAME,
                             GuestContext(name=NAME, test_mac=TEST_MAC))


def test_vhost_true_with_its_fd_open_is_a_passing_proof():
    host = FakeHost(data("cmdline-on.bin"), data("fd-on.txt"))
    assert proof(True, host) == HostProof("vhost", "vhost: true", True,
                                          "/dev/vhost-net open as fd 37 (netdev hostnet1)", True)
    assert not any(a[0] in ("sh", "bash") for a in host.calls)  # argv lists, never a shell


def test_vhost_true_without_evidence_fails_closed():
    p = proof(True, FakeHost(data("cmdline-off.bin"), data("fd-off.txt")))
    assert p is not None and (p.used, p.evidence, p.ok) == (False, "none", False)
    p = proof(True, FakeHost(data("cmdline-on.bin"), None, pid=None))   # no QEMU found
    assert p is not None and p.used is None and not p.ok and "not found" in p.evidence


def test_vhost_true_that_qemu_fell_back_from_fails():
    p = proof(True, FakeHost(data("cmdline-on.bin"), data("fd-on.txt"),
                             log=data("qemu-log-fallback.txt")))
    assert p is not None and (p.used, p.ok) == (False, False)
    assert "falling back on userspace virtio" in p.evidence


def test_vhost_false_in_use_fails_and_unset_only_records():
    host = FakeHost(data("cmdline-on.bin"), data("fd-on.txt"))
    p = proof(False, host)
    assert p is not None and (p.asked, p.used, p.ok) == ("vhost: false", True, False)
    p = proof(None, host)
    assert p is not None and (p.asked, p.used, p.ok) == ("", True, True)
    p = proof(False, FakeHost(data("cmdline-off.bin"), data("fd-off.txt")))
    assert p is not None and (p.used, p.evidence, p.ok) == (False, "none", True)


def test_the_pid_is_found_with_ps_where_the_host_does_not_know_it():
    ps = f" {PID} /usr/bin/qemu-system-x86_64 -name guest={NAME},debug-threads=on -S\n"
    host = FakeHost(data("cmdline-on.bin"), data("fd-on.txt"), pid=None, ps_args=ps)
    assert vhost_on_host(host, NAME, TEST_MAC)[0] is True


def test_emulated_nics_have_no_vhost_proof():
    assert DEVICE.host_proof(NicSpec(model="e1000"), FakeHost("", None), NAME,
                             GuestContext(test_mac=TEST_MAC)) is None


# ---- verification: the same path as a driver that is not bound ----------------------------------

def test_require_proofs_refuses_a_contradicting_proof_in_one_line():
    good = HostProof("vhost", "vhost: false", False, "none", True)
    verify.require_proofs([good, HostProof("vhost", "", True, "x", True)], "g")
    bad = HostProof("vhost", "vhost: true", False, "none", False)
    with pytest.raises(DeviceMismatch) as exc:
        verify.require_proofs([good, bad], "g")
    msg = str(exc.value)
    assert "\n" not in msg and msg == ("guest g does not run the intended backend: vhost: true "
                                       "asked, but vhost is not in use on the host (none)")


def test_host_proofs_asks_the_devices_of_the_profile():
    from vbench.guest.domain import mac_for
    from vbench.scenario.schema import DeviceProfile

    class G:
        name = NAME

    mac = mac_for(NAME, "test")
    on = data("cmdline-on.bin").replace(TEST_MAC, mac)
    proofs = verify.host_proofs(G(), FakeHost(on, data("fd-on.txt")),
                                DeviceProfile(nic=NicSpec(model="virtio", vhost=True)))
    assert [(p.name, p.used, p.ok) for p in proofs] == [("vhost", True, True)]
    assert verify.host_proofs(G(), FakeHost(on, None), DeviceProfile(nic=NicSpec(model="e1000"))) == []


def test_the_real_guest_factory_refuses_a_variant_whose_proof_fails(tmp_path, monkeypatch):
    """runner.LabGuests.boot asks the lab's host after the drivers are verified and fails closed:
    vhost: true on a QEMU whose test NIC has no vhost is a DeviceMismatch, like a wrong driver."""
    import contextlib

    from vbench.guest.domain import mac_for
    from vbench.results.rundir import RunDir
    from vbench.run import runner
    from vbench.scenario.schema import load_scenario_text

    scn = load_scenario_text(
        "name: v\ndevice: nic\nrepetitions: 1\nvariants:\n"
        "  - {name: vhost-on, nic: {model: virtio, vhost: true}}\n  - {name: e1000, nic: {model: e1000}}\n"
        "workloads:\n  - {name: rtt, ping: {count: 5}}\n")
    seen: list[str] = []

    class Guest:
        def __init__(self, name, lab, *args, **kw) -> None:
            self.name, self.image = name, None
            self.ssh = type("S", (), {"run": lambda *a, **k: CommandResult("fio", 0, "fio-3.33",
                                                                            "", 0.0)})()
            seen.append(name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

    monkeypatch.setattr(runner, "guest_class", lambda lab: Guest)
    monkeypatch.setattr(runner, "check_guest", lambda g, scn: None)
    monkeypatch.setattr(verify, "verify_guest", lambda g, prof: ([], {}))
    hosts: dict[str, FakeHost] = {}

    class Lab:
        @property
        def host(self) -> FakeHost:
            mac = mac_for(seen[-1], "test")
            return hosts[mac] if mac in hosts else hosts.setdefault(mac, FakeHost(
                data("cmdline-off.bin").replace(TEST_MAC, mac), data("fd-off.txt")))

    guests = runner.LabGuests(scn, RunDir.create(tmp_path, "run-1"), Lab(), None, None,
                              lambda line: None, key=object(), pub="")
    with contextlib.ExitStack() as stack:
        with pytest.raises(DeviceMismatch, match="vhost: true asked, but vhost is not in use"):
            guests.boot(stack, scn.variants[0], 0, None)
        booted = guests.boot(stack, scn.variants[1], 1, None)   # e1000: nothing to prove
    assert booted.proofs == [] and booted.fio_version == "fio-3.33"
