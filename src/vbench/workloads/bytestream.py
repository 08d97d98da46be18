"""Byte-stream probe: a host UNIX socket (QEMU's chardev) <-> the guest's end of a byte channel.

Three measurements, one command each in the guest, the host side in vbench itself:
- guest to host: the guest writes N zero bytes to its device; the host reads them from the
  socket and times first to last byte (``g2h_throughput``, KiB/s);
- host to guest: the guest reads one byte (the start mark), then N-1 more, timing them with its
  own clock and printing ``h2g <bytes> <start ns> <end ns>`` (``h2g_throughput``, KiB/s);
- round trip: the guest echoes every byte back (``cat``); the host sends one byte at a time and
  waits for it (``rtt_p50``/``rtt_p99``, us).
A serial port is switched to raw mode first (no echo, no line discipline); on a virtio port
``stty`` fails harmlessly. Parsing and statistics are pure functions; the executor
(:meth:`Bytestream.run`) asks the guest's devices for the channel (a live operation).
"""

from __future__ import annotations

import contextlib
import re
import shlex
import socket
import threading
import time
from typing import Any

from pydantic import Field

from vbench.core.errors import ProbeError
from vbench.devices.base import Strict
from vbench.workloads import sockend
from vbench.workloads.base import RunningUnit, WorkloadKind
from vbench.workloads.common import nearest_rank
from vbench.core.metrics import Sample

ECHO_PIDFILE = "/run/vbench-echo.pid"
_H2G = re.compile(r"^h2g (\d+) (\d+) (\d+)\s*$", re.M)


def raw_mode(dev: str) -> str:
    return f"stty -F {shlex.quote(dev)} raw -echo -icanon min 1 time 0 2>/dev/null; "


def g2h_command(dev: str, nbytes: int) -> str:
    return raw_mode(dev) + f"head -c {int(nbytes)} /dev/zero > {shlex.quote(dev)}"


def h2g_command(dev: str, nbytes: int, out: str) -> str:
    """Runs in the background: wait for the first byte, then time the rest."""
    d = shlex.quote(dev)
    inner = (f"exec 3<{d}; head -c 1 <&3 >/dev/null; s=$(date +%s%N); "
             f"n=$(head -c {int(nbytes) - 1} <&3 | wc -c); e=$(date +%s%N); "
             f"echo \"h2g $((n + 1)) $s $e\"")
    return raw_mode(dev) + f"nohup sh -c {shlex.quote(inner)} > {shlex.quote(out)} 2>&1 &"


def echo_command(dev: str) -> str:
    inner = f"echo $$ > {ECHO_PIDFILE}; exec 3<>{shlex.quote(dev)}; exec cat <&3 >&3"
    return raw_mode(dev) + f"nohup sh -c {shlex.quote(inner)} >/dev/null 2>&1 &"


def stop_echo_command() -> str:
    return f"[ -f {ECHO_PIDFILE} ] && kill $(cat {ECHO_PIDFILE}) 2>/dev/null; rm -f {ECHO_PIDFILE}; true"


def parse_h2g(text: str) -> tuple[int, float]:
    """(bytes, seconds) from the guest's ``h2g`` line."""
    m = _H2G.search(text)
    if not m:
        raise ProbeError(f"bytestream: no h2g result from the guest: {text.strip()[-200:]!r}")
    n, start, end = (int(x) for x in m.groups())
    if end <= start:
        raise ProbeError(f"bytestream: the guest's clock went backwards: {m.group(0)!r}")
    return n, (end - start) / 1e9


def bytestream_samples(workload: str, g2h: tuple[int, float] | None, h2g: tuple[int, float] | None,
                       rtts_us: list[float]) -> list[Sample]:
    out = []
    for name, got in (("g2h_throughput", g2h), ("h2g_throughput", h2g)):
        if got is not None and got[1] > 0:
            out.append(Sample(workload, name, got[0] / 1024 / got[1], "KiB/s"))
    if rtts_us:
        out.append(Sample(workload, "rtt_p50", nearest_rank(rtts_us, 50), "us"))
        out.append(Sample(workload, "rtt_p99", nearest_rank(rtts_us, 99), "us"))
    return out


# ---- the host's end ----------------------------------------------------------------------------

def _read_exactly(sock: socket.socket, n: int) -> tuple[int, float]:
    """Read n bytes; (bytes after the first chunk, seconds from the first chunk to the last)."""
    got, first_len, t_first, t_last = 0, 0, None, None
    while got < n:
        b = sock.recv(min(65536, n - got))
        if not b:
            break
        t_last = time.monotonic()
        if t_first is None:
            t_first, first_len = t_last, len(b)
        got += len(b)
    if got < n or t_first is None or t_last is None:
        raise ProbeError(f"bytestream: the host read {got} of {n} bytes")
    return got - first_len, t_last - t_first


def _echo_rtts_us(sock: socket.socket, pings: int) -> list[float]:
    """Round trips of one byte through the guest's echo, in microseconds: the socket probe's host
    end times them (:func:`vbench.workloads.sockend.round_trips`), and so does this one."""
    try:
        return sockend.round_trips(sock, pings)
    except sockend.Failed as exc:
        raise ProbeError(f"bytestream: {exc}") from None


# What a byte-stream probe stores, whatever carries the stream (sockstream stores the same).
STREAM_METRICS = ("g2h_throughput", "h2g_throughput", "rtt_p50", "rtt_p99")


# ---- scenario spec and declaration ----------------------------------------------------------

class BytestreamSpec(Strict):
    """Throughput both ways and round-trip time over the byte channel (device console)."""

    g2h_bytes: int = Field(1048576, ge=1024, le=1 << 30)
    h2g_bytes: int = Field(65536, ge=1024, le=1 << 30)
    pings: int = Field(100, ge=5, le=100000)
    timeout_s: int = Field(120, ge=5, le=3600)


class Bytestream(WorkloadKind):
    tool = "bytestream"
    spec = BytestreamSpec
    metrics = STREAM_METRICS
    headline = "g2h_throughput"
    guest_tools = ("stty", "head", "nohup", "date", "cat", "wc")

    def estimate_s(self, spec: Any, scn: Any) -> float:
        # the slower channel sets the estimate: a 16550 UART under TCG moved ~137 KiB/s guest to
        # host, 16 KiB/s host to guest, ~6 ms a round trip (tests/data/bytestream-serial-16550-tcg.txt)
        return 5.0 + spec.g2h_bytes / (128 << 10) + spec.h2g_bytes / (16 << 10) + spec.pings * 0.01

    def run(self, scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
        """Guest to host, host to guest, then round trips over the guest's byte channel."""
        spec = w.bytestream
        g = unit.guest("bytestream")
        channel = g.byte_channel()
        if channel is None:
            raise ProbeError(f"bytestream workloads need a byte channel (device console) in "
                             f"{g.name}")
        dev = channel.guest_device
        log: list[str] = [f"guest device {dev}"]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(spec.timeout_s)
        try:
            sock.connect(str(channel.host_socket))
            got: dict = {}

            def reader() -> None:
                try:
                    got["g2h"] = _read_exactly(sock, spec.g2h_bytes)
                except (OSError, ProbeError) as exc:
                    got["error"] = str(exc)

            th = threading.Thread(target=reader, daemon=True)
            th.start()
            g.run(g2h_command(dev, spec.g2h_bytes), timeout=spec.timeout_s, check=True)
            th.join(spec.timeout_s)
            if "g2h" not in got:
                raise ProbeError(f"bytestream: guest to host did not arrive: "
                                 f"{got.get('error', 'timeout')}")
            log.append(f"g2h {got['g2h'][0]} bytes in {got['g2h'][1]:.6f} s")
            out = "/run/vbench-h2g.out"
            g.run(h2g_command(dev, spec.h2g_bytes, out), timeout=30, check=True)
            time.sleep(0.5)  # the guest has opened its end
            sock.sendall(b"\0" * spec.h2g_bytes)
            deadline, text = time.monotonic() + spec.timeout_s, ""
            while time.monotonic() < deadline:
                text = g.run(f"cat {out} 2>/dev/null", timeout=30).stdout
                if "h2g " in text:
                    break
                time.sleep(0.2)
            log.append(text.strip())
            h2g = parse_h2g(text)
            g.run(echo_command(dev), timeout=30, check=True)
            time.sleep(0.5)
            rtts = _echo_rtts_us(sock, spec.pings)
            log.append("rtt_us " + " ".join(f"{x:.1f}" for x in rtts))
        except OSError as exc:
            raise ProbeError(f"bytestream over {channel.host_socket}: {exc}") from None
        finally:
            sock.close()
            with contextlib.suppress(Exception):
                g.run(stop_echo_command(), timeout=30)
        return bytestream_samples(w.name, got["g2h"], h2g, rtts), "\n".join(log)


WORKLOAD = Bytestream()
