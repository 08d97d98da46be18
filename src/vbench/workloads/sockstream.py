"""Socket byte-stream probe: the byte-stream measurements (:mod:`vbench.workloads.bytestream`:
throughput both ways, one-byte round trips, the same metric names) over a socket into the guest.

The transport is the guest's: AF_VSOCK to its CID when a device of the guest gives a socket
transport (``InGuest.guest_socket``: virtio-vsock), else TCP to its address on the test network
(the NIC under test). A vsock scenario's variants thus differ only in the vsock device, and the
report sets vsock against TCP metric by metric.

In the guest, socat listens (one connection per port, bounded by ``accept-timeout`` and ``-T``):
PORT sends ``g2h_bytes`` read from /dev/zero; PORT + 1 hands what it receives to ``head -c
h2g_bytes`` and answers one byte once it has them all; PORT + 2 echoes (socat ``PIPE``). The
host's end is :mod:`vbench.workloads.sockend`, a program run on the lab's host side (its
namespace), which times both directions with its own clock and prints three lines, parsed here by
pure functions.
"""

from __future__ import annotations

import ipaddress
import random
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from vbench.core.errors import ProbeError
from vbench.core.metrics import Sample
from vbench.devices.base import GuestSocket, Strict
from vbench.workloads.base import RunningUnit, WorkloadKind
from vbench.workloads.bytestream import STREAM_METRICS, bytestream_samples
from vbench.workloads.common import one_line

SOCKEND = Path(__file__).with_name("sockend.py")
GUEST_LOG = "/run/vbench-sockstream.log"
SOCAT_BUFFER = 256 << 10  # socat's -b: its default 8 KiB would cap the guest's end
MAX_RTT_LINE = 16 * 100000 + 64  # rtt_us and at most 100000 values of up to 15 characters
_G2H = re.compile(r"^g2h (\d+) (\d+\.\d+)\s*$", re.M)
_H2G = re.compile(r"^h2g (\d+) (\d+\.\d+)\s*$", re.M)
_RTT = re.compile(r"^rtt_us((?: \d+\.\d)+)\s*$", re.M)


# ---- the guest's end ---------------------------------------------------------------------------

def listen_address(sock: GuestSocket, port: int, wait_s: int) -> str:
    """socat's listening address for ``sock``'s transport on ``port`` (TCP: bound to the guest's
    address on the test network, Nagle off, as the host's end)."""
    bound = f"accept-timeout={int(wait_s)}"
    if sock.family == "vsock":
        return f"VSOCK-LISTEN:{int(port)},{bound}"
    ip = ipaddress.IPv4Address(sock.address)  # never a name or anything else in the command
    return f"TCP4-LISTEN:{int(port)},bind={ip},reuseaddr,nodelay,{bound}"


def guest_command(sock: GuestSocket, port: int, g2h_bytes: int, h2g_bytes: int,
                  timeout_s: int) -> str:
    """The shell line starting the guest's three one-shot listeners in the background."""
    wait = 3 * int(timeout_s) + 15  # the last listener waits through the two phases before it
    socat = ["socat", "-b", str(SOCAT_BUFFER), "-T", str(int(timeout_s))]
    g2h = socat + ["-u", f"OPEN:/dev/zero,readbytes={int(g2h_bytes)}",
                   listen_address(sock, port, wait)]
    h2g = socat + [listen_address(sock, port + 1, wait),
                   f"SYSTEM:head -c {int(h2g_bytes)} >/dev/null; printf x"]
    echo = socat + [listen_address(sock, port + 2, wait), "PIPE"]
    log = shlex.quote(GUEST_LOG)
    return f": > {log}; " + " ".join(
        f"nohup {shlex.join(argv)} >/dev/null 2>>{log} &" for argv in (g2h, h2g, echo))


# ---- the host's end ----------------------------------------------------------------------------

def host_argv(sock: GuestSocket, port: int, g2h_bytes: int, h2g_bytes: int, pings: int,
              timeout_s: int) -> list[str]:
    """The host's end (:mod:`vbench.workloads.sockend`) as an argv, in vbench's own Python
    isolated from its environment (``-I``: it needs only the standard library)."""
    return [sys.executable, "-I", str(SOCKEND), sock.family, sock.address, str(int(port)),
            str(int(g2h_bytes)), str(int(h2g_bytes)), str(int(pings)), str(int(timeout_s))]


def parse_host_end(text: str, g2h_bytes: int, h2g_bytes: int,
                   pings: int) -> tuple[tuple[int, float], tuple[int, float], list[float]]:
    """(g2h (bytes, seconds), h2g (bytes, seconds), round trips in us) from the host end's lines;
    ProbeError when a line is missing or does not add up to what was asked."""
    g2h, h2g, rtt = _G2H.search(text), _H2G.search(text), _RTT.search(text[:MAX_RTT_LINE * 2])
    if not (g2h and h2g and rtt):
        raise ProbeError(f"sockstream: the host end printed no g2h, h2g and rtt_us lines: "
                         f"{one_line(text[-300:])!r}")
    g2h_n, g2h_s = int(g2h.group(1)), float(g2h.group(2))
    h2g_n, h2g_s = int(h2g.group(1)), float(h2g.group(2))
    rtts = [float(x) for x in rtt.group(1).split()]
    if not 0 < g2h_n < g2h_bytes or h2g_n != h2g_bytes or len(rtts) != pings:
        raise ProbeError(f"sockstream: the host end measured {g2h_n} of {g2h_bytes} bytes guest "
                         f"to host, {h2g_n} of {h2g_bytes} host to guest, {len(rtts)} of "
                         f"{pings} round trips")
    if g2h_s <= 0 or h2g_s <= 0:
        raise ProbeError("sockstream: a transfer took no time: the host end's clock is broken")
    return (g2h_n, g2h_s), (h2g_n, h2g_s), rtts


# ---- scenario spec and declaration ----------------------------------------------------------

class SockstreamSpec(Strict):
    """Throughput both ways and one-byte round trips over a socket into the guest: AF_VSOCK when
    the guest has a vsock device, else TCP to its NIC under test."""

    g2h_bytes: int = Field(64 << 20, ge=1 << 20, le=1 << 30)
    h2g_bytes: int = Field(64 << 20, ge=1 << 20, le=1 << 30)
    pings: int = Field(500, ge=5, le=100000)
    timeout_s: int = Field(120, ge=5, le=600)


class Sockstream(WorkloadKind):
    tool = "sockstream"
    spec = SockstreamSpec
    metrics = STREAM_METRICS  # bytestream's: the report's ratio sets one transport against another
    headline = "g2h_throughput"
    guest_tools = ("socat", "head", "nohup")

    def estimate_s(self, spec: Any, scn: Any) -> float:
        # under TCG, 16 MiB/s each way and 1 ms a round trip assumed, not yet measured (a
        # virtio-serial port moved ~40 MiB/s guest to host:
        # tests/data/bytestream-virtio-serial-tcg.txt)
        return 10.0 + (spec.g2h_bytes + spec.h2g_bytes) / (16 << 20) + spec.pings * 0.001

    def run(self, scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
        """Start the guest's listeners, run the host's end against them, parse its lines."""
        spec = w.sockstream
        g = unit.guest("sockstream")
        sock = g.guest_socket() or GuestSocket("tcp", g.test_ip())
        port = random.randint(20000, 40000)
        g.run(guest_command(sock, port, spec.g2h_bytes, spec.h2g_bytes, spec.timeout_s),
              timeout=30, check=True)
        argv = host_argv(sock, port, spec.g2h_bytes, spec.h2g_bytes, spec.pings, spec.timeout_s)
        res = unit.host().run(argv, timeout=3 * spec.timeout_s + 30)
        head = f"transport {sock.family} {sock.address} port {port}"
        if not res.ok:
            said = g.run(f"tail -c 600 {shlex.quote(GUEST_LOG)}", timeout=30).stdout
            raise ProbeError(f"sockstream over {sock.family}: {one_line(res.tail())}; guest "
                             f"socat: {one_line(said) or 'nothing'}")
        g2h, h2g, rtts = parse_host_end(res.stdout, spec.g2h_bytes, spec.h2g_bytes, spec.pings)
        return bytestream_samples(w.name, g2h, h2g, rtts), f"{head}\n{res.stdout.strip()}"


WORKLOAD = Sockstream()
