"""iperf3: the network throughput probe. Owns the iperf3 client/server command lines and the
parsing of the client's ``-J`` JSON output (iperf3 3.x).

iperf3 3.12 with ``-J`` exits 0 even when the test failed (connection refused, server busy): the
failure is only in the JSON's ``"error"`` key, so the parser, not the exit status, decides.

Metrics:
- TCP: ``throughput`` (Mbit/s, from ``end.sum_received``: what the receiver got),
  ``retransmits`` (count, from ``end.sum_sent`` when present).
- UDP: ``throughput`` (Mbit/s, ``end.sum_received`` when present, else ``end.sum``),
  ``pps`` (pkt/s, ``end.sum.packets / end.sum.seconds``: datagrams offered by the sender),
  ``loss`` (%, ``end.sum.lost_percent``).
- both: ``sender_cpu`` and ``receiver_cpu`` (%, iperf3's ``host_total`` / ``remote_total``
  mapped to the sending and receiving side; ``-R`` swaps which side sends).

The end sums already leave out the ``-O`` omitted intervals.
"""

from __future__ import annotations

import json
import random
import re
import shlex
from typing import Any, Literal

from pydantic import Field

from vbench.core import procs
from vbench.core.errors import ProbeError, RemoteCommandError
from vbench.devices.base import Strict
from vbench.workloads.base import (Direction, RunningUnit, WorkloadKind, both_directions,
                                   per_direction)
from vbench.core.metrics import Sample
from vbench.workloads.common import finite_sample, nonnegative_number, one_line, section
from vbench.workloads import placement
from vbench.workloads.placement import Placement

_BITRATE_RE = re.compile(r"^\d+(\.\d+)?[KMGTkmgt]?(/\d+)?$")
_MAX_STREAMS = 128  # iperf3's own limit for -P


# ---------------------------------------------------------------- command lines


def iperf3_client_argv(
    server: str,
    port: int,
    duration: int,
    omit: int,
    parallel: int = 1,
    reverse: bool = False,
    udp: bool = False,
    bitrate: str | None = None,
    length: int | None = None,
    bind: str | None = None,
    connect_timeout_ms: int = 5000,
) -> list[str]:
    """The argv of an iperf3 client writing JSON (``-J``) to stdout.

    ``reverse`` makes the server send (``-R``). For UDP, iperf3's default bitrate is only
    1 Mbit/s: pass ``bitrate="0"`` for unlimited or a target such as ``"500M"``.
    """
    _check_host("server", server)
    _check_int("port", port, 1, 65535)
    _check_int("duration", duration, 1, 86400)
    _check_int("omit", omit, 0, 600)
    _check_int("parallel", parallel, 1, _MAX_STREAMS)
    _check_int("connect_timeout_ms", connect_timeout_ms, 1, 600000)
    argv = ["iperf3", "-c", server, "-p", str(port), "-t", str(duration), "-O", str(omit)]
    argv += ["-P", str(parallel), "-J", "--connect-timeout", str(connect_timeout_ms)]
    if reverse:
        argv.append("-R")
    if udp:
        argv.append("-u")
    if bitrate is not None:
        if not isinstance(bitrate, str) or not _BITRATE_RE.match(bitrate):
            raise ProbeError(
                f"iperf3 bitrate {bitrate!r} is invalid: use a number with an optional K/M/G "
                "suffix, e.g. '500M' (0 = unlimited)"
            )
        argv += ["-b", bitrate]
    if length is not None:
        _check_int("length", length, 1, 1 << 20)
        argv += ["-l", str(length)]
    if bind is not None:
        _check_host("bind", bind)
        argv += ["-B", bind]
    return argv


def iperf3_server_argv(bind: str, port: int, one_off: bool = True) -> list[str]:
    """The argv of an iperf3 server on ``bind``:``port`` in the foreground (no ``-D``).

    ``one_off`` (``-1``) makes it exit after one test, so a stale server never answers the next run.
    """
    _check_host("bind", bind)
    _check_int("port", port, 1, 65535)
    argv = ["iperf3", "-s"]
    if one_off:
        argv.append("-1")
    return argv + ["-B", bind, "-p", str(port)]


def _check_host(what: str, value: str) -> None:
    if not isinstance(value, str) or not value or value.startswith("-") or any(
        c.isspace() or c == "\0" for c in value
    ):
        raise ProbeError(f"iperf3 {what} {value!r} is invalid: give an address or host name")


def _check_int(what: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProbeError(f"iperf3 {what} {value!r} is invalid: give a whole number {low}..{high}")


# ---------------------------------------------------------------- JSON output


def parse_iperf3_json(text: str, workload: str) -> list[Sample]:
    """Samples of one iperf3 client run (see the module docstring for the metrics)."""
    doc = _load(text)
    if "error" in doc:
        raise ProbeError(_error_message(doc["error"]))
    test = _obj(_obj(doc, "start"), "test_start")
    end = _obj(doc, "end")
    if not end:
        raise ProbeError("iperf3's JSON has an empty 'end' summary: the test did not finish, rerun")
    protocol = test.get("protocol")
    if protocol == "TCP":
        samples = _tcp_samples(end, workload)
    elif protocol == "UDP":
        samples = _udp_samples(end, workload)
    else:
        raise ProbeError(
            f"iperf3 ran protocol {one_line(repr(protocol))[:40]}: vbench parses only TCP and "
            "UDP tests"
        )
    return samples + _cpu_samples(end, _reverse(test), workload)


def _tcp_samples(end: dict, workload: str) -> list[Sample]:
    received = _obj(end, "sum_received")
    if _num(received, "bytes", "sum_received") == 0:
        raise ProbeError(
            "iperf3 TCP test received 0 bytes: check that the guest NIC is up and that nothing "
            "blocks the port"
        )
    bps = _num(received, "bits_per_second", "sum_received")
    samples = [_sample(workload, "throughput", bps / 1e6, "Mbit/s")]
    sent = end.get("sum_sent")
    if isinstance(sent, dict) and "retransmits" in sent:
        retrans = _num(sent, "retransmits", "sum_sent")
        samples.append(_sample(workload, "retransmits", retrans, "count"))
        sent_bytes = _num(sent, "bytes", "sum_sent") if "bytes" in sent else 0.0
        if sent_bytes > 0:  # per GB sent: comparable across durations and bit rates
            samples.append(_sample(workload, "retransmits_per_gb", retrans / (sent_bytes / 1e9),
                                   "1/GB"))
    return samples


def _udp_samples(end: dict, workload: str) -> list[Sample]:
    total = _obj(end, "sum")
    received = end.get("sum_received")
    view, where = (received, "sum_received") if isinstance(received, dict) else (total, "sum")
    bps = _num(view, "bits_per_second", where)
    seconds = _num(total, "seconds", "sum")
    if seconds <= 0:
        raise ProbeError("iperf3 UDP summary lasted 0 seconds: the test did not run, rerun it")
    return [
        _sample(workload, "throughput", bps / 1e6, "Mbit/s"),
        _sample(workload, "pps", _num(total, "packets", "sum") / seconds, "pkt/s"),
        _sample(workload, "loss", _num(total, "lost_percent", "sum"), "%"),
    ]


def _cpu_samples(end: dict, reverse: bool, workload: str) -> list[Sample]:
    """sender_cpu / receiver_cpu: the client is ``host``, the server ``remote``; -R swaps roles."""
    cpu = end.get("cpu_utilization_percent")
    if not isinstance(cpu, dict):
        return []
    local = _num(cpu, "host_total", "cpu_utilization_percent")
    remote = _num(cpu, "remote_total", "cpu_utilization_percent")
    sender, receiver = (remote, local) if reverse else (local, remote)
    return [
        _sample(workload, "sender_cpu", sender, "%"),
        _sample(workload, "receiver_cpu", receiver, "%"),
    ]


def _reverse(test: dict) -> bool:
    value = test.get("reverse", 0)
    if value in (0, 1) and not isinstance(value, float):
        return bool(value)
    raise ProbeError(f"iperf3's test_start.reverse is {value!r}, not 0/1: rerun iperf3")


def _error_message(error: object) -> str:
    said = one_line(str(error))
    low = said.lower()
    if "busy" in low:
        advice = "another client is using that server; wait for it or give this test its own port"
    elif "refused" in low:
        advice = "no iperf3 server listens there; check that the server was started on that port"
    elif "timed out" in low or "timeout" in low or "no route" in low or "unreachable" in low:
        advice = "the server is unreachable; check the guest's address and network"
    else:
        advice = "check the iperf3 server and the options"
    return f"iperf3 failed: {said}: {advice}"


def _load(text: str) -> dict:
    """The JSON document in ``text``, ignoring lines around it (e.g. an appended exit status)."""
    if not isinstance(text, str):
        raise ProbeError("iperf3 output is not text: pass the decoded stdout of iperf3 -J")
    match = re.search(r"^\{", text, re.MULTILINE)
    start = match.start() if match else text.find("{")
    if start < 0:
        raise ProbeError(
            f"iperf3 printed no JSON ({one_line(text)[:120]!r}): run the client with -J"
        )
    try:
        doc, _end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        raise ProbeError(
            "iperf3's JSON output is truncated or malformed: check that the client finished "
            "and that nothing else wrote to its stdout"
        ) from None
    if not isinstance(doc, dict):
        raise ProbeError("iperf3's JSON output is not an object: check the iperf3 version (3.x)")
    return doc


def _obj(doc: dict, key: str) -> dict:
    return section(doc, key,
                   f"iperf3's JSON has no {key!r} object: the test did not finish or iperf3 is not 3.x")


def _num(obj: dict, key: str, where: str) -> float:
    field = f"iperf3's JSON field {where}.{key}".replace("{", "{{").replace("}", "}}")
    return nonnegative_number(
        obj.get(key),
        field + " is {shown}, not a number: the test did not finish or iperf3 is not 3.x",
        field + " is {value}: output corrupt, rerun")


def _sample(workload: str, metric: str, value: float, unit: str) -> Sample:
    return finite_sample(workload, metric, value, unit,
                         "iperf3 gave a non-finite {metric}: output corrupt, rerun")


# ---- scenario spec and declaration ----------------------------------------------------------

class Iperf3Spec(Strict):
    protocol: Literal["tcp", "udp"] = "tcp"
    directions: list[Direction] = Field(default_factory=both_directions, min_length=1)
    parallel: int = Field(1, ge=1, le=32)
    duration: int = Field(10, ge=1, le=600)
    omit: int = Field(2, ge=0, le=60)
    bitrate: str | None = Field(None, pattern=r"^[0-9]+[KMG]?$")
    length: int | None = Field(None, ge=16, le=65507)
    placement: Placement = Field("split", description="split: the NIC's interrupts on vCPU 0 and "
                                 "iperf3 on the last vCPU; free: where the guest puts them "
                                 "(vbench.workloads.placement)")


class Iperf3(WorkloadKind):
    tool = "iperf3"
    spec = Iperf3Spec
    metrics = ("throughput", "retransmits", "retransmits_per_gb", "pps", "loss", "sender_cpu",
               "receiver_cpu", "host_cpu_per_gbit")
    headline = "throughput"
    guest_tools = ("iperf3",)
    remote = True
    # 2: placement (split by default: NIC interrupts and iperf3 on different vCPUs, set and read
    # back around each run). 1: iperf3 wherever the guest put it, two modes up to 1.6x apart.
    method = 2

    def problems(self, spec: Any, scn: Any) -> list[str]:
        return placement.problems(spec.placement, scn.guest.vcpus)

    def estimate_s(self, spec: Any, scn: Any) -> float:
        return (spec.duration + spec.omit + 2.0) * len(spec.directions)

    def run(self, scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
        """Each direction between the guest's NIC under test and a host-side server; the guest
        is always the client (``-R``: the server sends, host to guest)."""
        spec = w.iperf3
        g = unit.guest("iperf3")
        guest_ip, host_ip = g.test_ip(), unit.host().peer_ip()
        bound = spec.duration + spec.omit + 30

        def one(name: str, direction: Direction) -> tuple[list[Sample], str]:
            port = random.randint(20000, 40000)
            argv = iperf3_client_argv(host_ip, port, spec.duration, spec.omit, spec.parallel,
                                      reverse=(direction == "h2g"), udp=spec.protocol == "udp",
                                      bitrate=spec.bitrate, length=spec.length, bind=guest_ip)
            with placement.placed_run(g, guest_ip, spec.placement, scn.guest.vcpus) as placed:
                if placed is not None:
                    argv = placed.wrap(argv)
                with unit.host().peer(iperf3_server_argv(host_ip, port), port):
                    # iperf3 runs omit + duration seconds; only the last `duration` are measured.
                    with g.qemu_cpu(spec.omit, spec.duration) as cpu:
                        res = g.run(shlex.join(procs.killed_after(bound) + argv),
                                    timeout=bound + 15)
                if res.timed_out:
                    raise RemoteCommandError(res, f"iperf3 did not finish within {bound} s in "
                                                  f"{g.name} (hung?)")
                got = parse_iperf3_json(res.stdout, name)
                if not res.ok and not got:
                    raise RemoteCommandError(res)
            tput = next((s.value for s in got if s.metric == "throughput"), None)
            rate = cpu.rate()
            if tput and rate is not None:
                got.append(Sample(name, "host_cpu_per_gbit", rate / (tput / 1000), "s/Gbit"))
            shown = "free" if placed is None else placed.describe()
            return got, f"# placement: {shown}\n{res.stdout}"

        return per_direction(w.name, spec.directions, one)


WORKLOAD = Iperf3()
