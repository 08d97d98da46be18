"""ping: the small-exchange latency probe. Owns the iputils ``ping`` command line and the parsing
of its per-reply output (iputils s20221126, as in Debian 12, on the host and in the guest).

Metrics:
- ``rtt_p50``, ``rtt_p99`` (us): nearest-rank percentiles of the per-reply ``time=X ms`` values.
  Nearest rank: sort the n values, the p-th percentile is the value at 1-based rank
  ``ceil(p/100 * n)``; always a measured value, never interpolated. Duplicate replies
  (``(DUP!)``) and corrupted ones (``(BAD CHECKSUM!)``) are not round trips and are left out.
- ``loss`` (%): ``(transmitted - received) / transmitted`` from the summary line (ping itself
  prints this rounded with ``%g``).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import Field

from vbench.core.errors import ProbeError
from vbench.devices.base import Strict
from vbench.workloads.base import (Direction, RunningUnit, WorkloadKind, both_directions,
                                   per_direction)
from vbench.core.metrics import Sample
from vbench.workloads.common import held_stdout, nearest_rank

_REPLY_RE = re.compile(
    r"^\d{1,6} bytes from .*\bicmp_seq=\d{1,10}\b.*\btime=(\d{1,9}(?:\.\d{1,9})?) ms(.*)$"
)
_SUMMARY_RE = re.compile(
    r"^(\d{1,18}) packets transmitted, (\d{1,18}) received(?:, \+\d{1,18} \w+)*, "
    r"[0-9.e+-]{1,20}% packet loss"
)
_PROBLEM_RE = re.compile(
    r"^(?:ping: .*|From .*|.*(?:Unreachable|unreachable|Time to live exceeded|Name or service).*)$"
)
_IFACE_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_MAX_TOOL_TEXT = 200


def ping_argv(
    target: str, count: int, interval: float, size: int = 56, bind_iface: str | None = None
) -> list[str]:
    """The argv of ``ping -n -c COUNT -i INTERVAL -s SIZE [-I IFACE] TARGET`` (no ``-q``: the
    per-reply lines are what :func:`parse_ping` measures). Intervals below 0.2 s need root."""
    if not isinstance(target, str) or not target or target.startswith("-") or any(
        c.isspace() or c == "\0" for c in target
    ):
        raise ProbeError(f"ping target {target!r} is invalid: give an address or host name")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ProbeError(f"ping count {count!r} is invalid: give a whole number >= 1")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
        0.001 <= interval <= 3600
    ):
        raise ProbeError(f"ping interval {interval!r} is invalid: give seconds in 0.001..3600")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 65507:
        raise ProbeError(f"ping size {size!r} is invalid: give payload bytes in 0..65507")
    argv = ["ping", "-n", "-c", str(count), "-i", _seconds(interval), "-s", str(size)]
    if bind_iface is not None:
        if not isinstance(bind_iface, str) or not _IFACE_RE.match(bind_iface):
            raise ProbeError(f"ping interface {bind_iface!r} is invalid: give an interface name")
        argv += ["-I", bind_iface]
    return argv + [target]


def _seconds(interval: float) -> str:
    """``0.2`` -> ``"0.2"``, ``1`` -> ``"1"``: plain decimal, what ping's -i accepts."""
    text = f"{float(interval):.3f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_ping(text: str, workload: str) -> list[Sample]:
    """Samples of one ping run (see the module docstring for the metrics)."""
    if not isinstance(text, str):
        raise ProbeError("ping output is not text: pass the decoded stdout of ping")
    lines = text.splitlines()
    rtts_us = [rtt for rtt in (_reply_rtt_us(line) for line in lines) if rtt is not None]
    summary = [m for m in (_SUMMARY_RE.match(line.strip()) for line in lines) if m]
    if not summary:
        raise ProbeError(
            f"ping printed no summary line (interrupted, or it could not start){_said(lines)}; "
            "check the target address and the route to it"
        )
    transmitted, received = int(summary[-1].group(1)), int(summary[-1].group(2))
    if transmitted == 0 or received > transmitted:
        raise ProbeError(
            f"ping summary '{summary[-1].group(0)}' is inconsistent: rerun ping"
        )
    if received == 0 or not rtts_us:
        raise ProbeError(
            f"ping got no replies ({summary[-1].group(0)}){_said(lines)}; check that the "
            "target is up and reachable"
        )
    loss = (transmitted - received) * 100.0 / transmitted
    return [
        Sample(workload, "rtt_p50", nearest_rank(rtts_us, 50.0), "us"),
        Sample(workload, "rtt_p99", nearest_rank(rtts_us, 99.0), "us"),
        Sample(workload, "loss", loss, "%"),
    ]


def _reply_rtt_us(line: str) -> float | None:
    match = _REPLY_RE.match(line.strip())
    if not match or "(DUP!)" in match.group(2) or "BAD CHECKSUM" in match.group(2):
        return None
    return float(match.group(1)) * 1000.0


def _said(lines: list[str]) -> str:
    problems = [
        re.sub(r"\s*icmp_seq=\d+", "", line.strip())
        for line in lines
        if _PROBLEM_RE.match(line.strip())
    ]
    if not problems:
        return ""
    told = " ".join(" | ".join(dict.fromkeys(problems)).split())
    if len(told) > _MAX_TOOL_TEXT:
        told = told[: _MAX_TOOL_TEXT - 3] + "..."
    return f"; ping said: {told}"


# ---- scenario spec and declaration ----------------------------------------------------------

class PingSpec(Strict):
    directions: list[Direction] = Field(default_factory=both_directions, min_length=1)
    count: int = Field(200, ge=5, le=100000)
    interval: float = Field(0.01, ge=0.002, le=1.0)
    size: int = Field(56, ge=16, le=1472)


def g2h_command(host_ip: str, spec: PingSpec) -> str:
    """The guest's command of the guest-to-host direction: ping with its per-reply lines held
    in the guest until it ends (``held_stdout``: nothing crosses SSH while it measures)."""
    return held_stdout(shlex.join(ping_argv(host_ip, spec.count, spec.interval, spec.size)))


class Ping(WorkloadKind):
    tool = "ping"
    spec = PingSpec
    metrics = ("rtt_p50", "rtt_p99", "loss")
    headline = "rtt_p50"
    guest_tools = ("ping",)
    remote = True
    # 2: guest-to-host lines held in the guest until ping ends (g2h_command). 1: streamed over
    # SSH while ping ran, which woke the guest: rtt_p50 about 17 % shorter than held.
    method = 2

    def estimate_s(self, spec: Any, scn: Any) -> float:
        return (spec.count * spec.interval + 2.0) * len(spec.directions)

    def run(self, scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
        """Each direction between the guest's NIC under test and the lab's host side: h2g pings
        the guest from the host side, g2h the host side from the guest."""
        spec = w.ping
        g = unit.guest("ping")
        guest_ip, host_ip = g.test_ip(), unit.host().peer_ip()
        bound = int(spec.count * spec.interval + 30)

        def one(name: str, direction: Direction) -> tuple[list[Sample], str]:
            if direction == "h2g":
                res = unit.host().run(ping_argv(guest_ip, spec.count, spec.interval, spec.size),
                                      timeout=bound)
            else:
                res = g.run(g2h_command(host_ip, spec), timeout=bound)
            return parse_ping(res.stdout, name), f"{res.stdout}{res.stderr}"

        return per_direction(w.name, spec.directions, one)


WORKLOAD = Ping()
