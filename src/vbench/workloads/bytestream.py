"""Byte-stream probe: a host UNIX socket (QEMU's chardev) <-> the guest's end of a byte channel.

Three measurements, one command each in the guest, the host side in vbench itself:
- guest to host: the guest writes N zero bytes to its device; the host reads them from the
  socket and times first to last byte (``g2h_throughput``, KiB/s);
- host to guest: the guest reads one byte (the start mark), then N-1 more, timing them with its
  own clock and printing ``h2g <bytes> <start ns> <end ns>`` (``h2g_throughput``, KiB/s);
- round trip: the guest echoes every byte back (``cat``); the host sends one byte at a time and
  waits for it (``rtt_p50``/``rtt_p99``, us).
A serial port is switched to raw mode first (no echo, no line discipline); on a virtio port
``stty`` fails harmlessly. Parsing and statistics are pure functions.
"""

from __future__ import annotations

import re
import shlex
import statistics

from vbench.core.errors import ProbeError
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


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def bytestream_samples(workload: str, g2h: tuple[int, float] | None, h2g: tuple[int, float] | None,
                       rtts_us: list[float]) -> list[Sample]:
    out = []
    for name, got in (("g2h_throughput", g2h), ("h2g_throughput", h2g)):
        if got is not None and got[1] > 0:
            out.append(Sample(workload, name, got[0] / 1024 / got[1], "KiB/s"))
    if rtts_us:
        out.append(Sample(workload, "rtt_p50", statistics.median(rtts_us), "us"))
        out.append(Sample(workload, "rtt_p99", percentile(rtts_us, 99), "us"))
    return out
