"""The socket byte-stream probe (workload sockstream): the guest's listeners and the host's end
as command lines; the host end's lines parsed by pure functions (recorded on loopback against a
Python stand-in for the guest's socat listeners: tests/data/sockstream-tcp-loopback-standin.txt);
the host end itself over loopback; the executor at the seam (fake guest, fake host side)."""

from __future__ import annotations

import random
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vbench.core.errors import ProbeError
from vbench.core.metrics import CommandResult
from vbench.devices.base import GuestSocket
from vbench.scenario.schema import load_scenario_text
from vbench.workloads import WORKLOADS, sockend
from vbench.workloads import sockstream as ss

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = (DATA / "sockstream-tcp-loopback-standin.txt").read_text()
MIB64 = 64 << 20
VSOCK = GuestSocket("vsock", "3")
TCP = GuestSocket("tcp", "192.168.123.45")


# ---- the host end's lines ----------------------------------------------------------------------

def test_recorded_host_end_output_parses_into_the_bytestream_metrics():
    g2h, h2g, rtts = ss.parse_host_end(RECORDED, MIB64, MIB64, 500)
    assert g2h == (66980864, 0.052888198) and h2g == (MIB64, 0.027693299) and len(rtts) == 500
    got = {s.metric: s for s in ss.bytestream_samples("stream", g2h, h2g, rtts)}
    assert set(got) == set(WORKLOADS["sockstream"].metrics) == set(WORKLOADS["bytestream"].metrics)
    assert got["g2h_throughput"].unit == "KiB/s"
    assert got["h2g_throughput"].value == pytest.approx(MIB64 / 1024 / 0.027693299)
    assert 10 < got["rtt_p50"].value < got["rtt_p99"].value < 1000  # us, loopback


@pytest.mark.parametrize("text, match", [
    ("", "no g2h, h2g and rtt_us lines"),
    (RECORDED.replace("h2g ", "h2x "), "no g2h, h2g and rtt_us"),
    (RECORDED.replace("h2g 67108864", "h2g 67108000"), "67108000 of 67108864 host to guest"),
    (RECORDED.replace("g2h 66980864", "g2h 67108864"), "67108864 of 67108864 bytes guest to host"),
    (RECORDED.replace(" 33.5 ", " ", 1), "499 of 500 round trips"),
    (RECORDED.replace("0.027693299", "0.000000000"), "took no time"),
    (RECORDED.replace(" 20.1 ", " -20.1 "), "no g2h, h2g and rtt_us"),
])
def test_host_end_output_that_does_not_add_up_is_refused(text, match):
    with pytest.raises(ProbeError, match=match):
        ss.parse_host_end(text, MIB64, MIB64, 500)


# ---- command lines -----------------------------------------------------------------------------

def test_guest_listeners_over_vsock():
    cmd = ss.guest_command(VSOCK, 30000, MIB64, 1 << 20, 120)
    words = [w for part in cmd.split(" & ") for w in shlex.split(part.replace(";", " ; ", 1))]
    assert "VSOCK-LISTEN:30000,accept-timeout=375" in words
    assert "VSOCK-LISTEN:30001,accept-timeout=375" in words
    assert "VSOCK-LISTEN:30002,accept-timeout=375" in words
    assert f"OPEN:/dev/zero,readbytes={MIB64}" in words
    assert shlex.quote("SYSTEM:head -c 1048576 >/dev/null; printf x") in cmd and "PIPE" in words
    assert cmd.count("nohup socat -b 262144 -T 120 ") == 3 and cmd.count(" &") == 3
    assert "TCP" not in cmd


def test_guest_listeners_over_tcp_are_bound_to_the_test_address_without_nagle():
    cmd = ss.guest_command(TCP, 30000, MIB64, MIB64, 60)
    for port in (30000, 30001, 30002):
        assert (f"TCP4-LISTEN:{port},bind=192.168.123.45,reuseaddr,nodelay,accept-timeout=195"
                in cmd)
    assert "VSOCK" not in cmd


@pytest.mark.parametrize("bad", ["192.168.1.1; reboot", "$(reboot)", "guest.example", ""])
def test_a_tcp_address_that_is_not_an_ipv4_address_never_reaches_a_command(bad):
    with pytest.raises(ValueError):
        ss.guest_command(GuestSocket("tcp", bad), 30000, MIB64, MIB64, 60)


def test_host_end_is_an_argv_of_vbenchs_own_python_isolated():
    argv = ss.host_argv(TCP, 30000, MIB64, MIB64, 500, 120)
    assert argv == [sys.executable, "-I", str(ss.SOCKEND), "tcp", "192.168.123.45", "30000",
                    str(MIB64), str(MIB64), "500", "120"]
    assert ss.SOCKEND.is_file() and all(isinstance(a, str) for a in argv)
    assert "import vbench" not in ss.SOCKEND.read_text()  # -I: only the standard library


@pytest.mark.parametrize("args, match", [
    (["udp", "127.0.0.1", "1", "1024", "1024", "5", "5"], "family"),
    (["vsock", "2", "1", "1024", "1024", "5", "5"], "CID"),
    (["vsock", "x", "1", "1024", "1024", "5", "5"], "invalid literal"),
    (["tcp", "localhost", "1", "1024", "1024", "5", "5"], "octets"),
    (["tcp", "127.0.0.1", "65534", "1024", "1024", "5", "5"], "port"),
    (["tcp", "127.0.0.1", "1", str((1 << 30) + 1), "1024", "5", "5"], "out of range"),
    (["tcp", "127.0.0.1", "1", "1024", "1024", "5"], "usage"),
])
def test_host_end_refuses_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        sockend.parse_args(args)


# ---- the host end over loopback, against a stand-in for the guest's socat -------------------

def _three_listeners() -> list[socket.socket]:
    """Listening sockets on three consecutive loopback ports (the host end's PORT to PORT + 2)."""
    for _ in range(100):
        base, socks = random.randint(42000, 60000), []
        try:
            for i in range(3):
                socks.append(socket.create_server(("127.0.0.1", base + i)))
            return socks
        except OSError:
            for s in socks:
                s.close()
    raise RuntimeError("no three consecutive free loopback ports")


def _stand_in_guest(g2h: int, h2g: int) -> int:
    """Three one-shot listeners on loopback behaving as the guest's socat ones; the first port."""
    socks = _three_listeners()

    def send(c):
        c.sendall(bytes(g2h))

    def take(c):
        left = h2g
        while left and (b := c.recv(min(65536, left))):
            left -= len(b)
        c.sendall(b"x")

    def echo(c):
        while b := c.recv(4096):
            c.sendall(b)

    def serve(s, job):
        with s, s.accept()[0] as c:
            job(c)

    for s, job in zip(socks, (send, take, echo)):
        threading.Thread(target=serve, args=(s, job), daemon=True).start()
    return socks[0].getsockname()[1]


def test_host_end_measures_a_stand_in_guest_over_loopback():
    port = _stand_in_guest(2 << 20, 1 << 20)
    res = subprocess.run(ss.host_argv(GuestSocket("tcp", "127.0.0.1"), port, 2 << 20, 1 << 20,
                                      20, 10), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    g2h, h2g, rtts = ss.parse_host_end(res.stdout, 2 << 20, 1 << 20, 20)
    assert 0 < g2h[0] < 2 << 20 and h2g[0] == 1 << 20 and len(rtts) == 20


def test_host_end_says_in_one_line_when_nothing_listens():
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed again below: nothing listens there
    res = subprocess.run(ss.host_argv(GuestSocket("tcp", "127.0.0.1"), port, 1 << 20, 1 << 20,
                                      5, 1), capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith(f"sockend: g2h: nothing listens on tcp 127.0.0.1 port {port}")
    assert res.stderr.count("\n") == 1


# ---- the executor at the seam ------------------------------------------------------------------

class FakeGuest:
    def __init__(self, sock):
        self.name, self.sock, self.cmds = "g", sock, []

    def guest_socket(self):
        return self.sock

    def test_ip(self):
        return TCP.address

    def run(self, cmd, timeout, check=False):
        self.cmds.append(cmd)
        return CommandResult(cmd, 0, "socat[1] E connect: refused\n", "", 0.0)


class FakeUnit:
    def __init__(self, sock, out=RECORDED, status=0):
        self.g, self.argvs = FakeGuest(sock), []
        self.answer = (status, out)

    def guest(self, tool):
        return self.g

    def host(self):
        unit = self

        class Host:
            def run(self, argv, timeout):
                unit.argvs.append(argv)
                status, out = unit.answer
                return CommandResult(" ".join(argv), status, out if status == 0 else "",
                                     "" if status == 0 else out, 0.1)
        return Host()


SCN = load_scenario_text("""
name: v
device: vsock
defaults: {nic: {model: virtio}}
variants: [{name: vsock, vsock: {model: virtio}}, {name: tcp, vsock: {model: none}}]
workloads: [{name: stream, sockstream: {}}]
""")


@pytest.mark.parametrize("sock, family, address", [(VSOCK, "vsock", "3"),
                                                    (None, "tcp", TCP.address)])
def test_executor_takes_the_guests_socket_else_tcp_to_its_nic_under_test(sock, family, address):
    w = SCN.workloads[0]
    unit = FakeUnit(sock)
    samples, raw = WORKLOADS["sockstream"].run(SCN, w, unit)  # type: ignore[arg-type]
    assert {s.metric for s in samples} == {"g2h_throughput", "h2g_throughput", "rtt_p50",
                                           "rtt_p99"}
    assert all(s.workload == "stream" for s in samples)
    [argv] = unit.argvs
    assert argv[3:5] == [family, address] and raw.startswith(f"transport {family} {address} ")
    assert ("VSOCK-LISTEN" if family == "vsock" else "TCP4-LISTEN") in unit.g.cmds[0]


def test_executor_failure_is_one_line_with_the_guests_socat_said():
    unit = FakeUnit(VSOCK, "sockend: g2h: nothing listens on vsock 3 port 30000: reset", 1)
    with pytest.raises(ProbeError) as exc:
        WORKLOADS["sockstream"].run(SCN, SCN.workloads[0], unit)  # type: ignore[arg-type]
    said = str(exc.value)
    assert "\n" not in said and "nothing listens on vsock 3" in said and "connect: refused" in said


def test_the_shipped_vsock_scenario_differs_only_in_the_transport_device():
    path = Path(__file__).resolve().parents[2] / "scenarios" / "vsock.yaml"
    scn = load_scenario_text(path.read_text())
    profiles = {v.name: scn.profile(v) for v in scn.variants}
    assert {n: p.vsock.model for n, p in profiles.items()} == {"vsock": "virtio",
                                                               "tcp-virtio-net": "none"}
    assert all(p.nic is not None and p.nic.model == "virtio" for p in profiles.values())
    vsock, tcp = (p.model_copy(update={"vsock": None}) for p in profiles.values())
    assert vsock == tcp
    assert scn.reference == "tcp-virtio-net"  # the report's ratios: vsock / TCP
    assert [w.kind.tool for w in scn.workloads] == ["sockstream"]
