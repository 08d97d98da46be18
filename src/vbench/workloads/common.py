"""Helpers the probes share: a tool's text on one bounded line, a number read from a tool's
output that must be finite and not negative, the one percentile of round-trip times, a sample of
a finite value, the VM-exit samples of a measured window, and a guest command whose output waits
until it ends."""

from __future__ import annotations

import math
from typing import Any

from vbench.core.errors import ProbeError
from vbench.core.metrics import Sample, metric_unit

MAX_TOOL_TEXT = 300  # characters of a tool's own text quoted in an error


def held_stdout(command: str) -> str:
    """``command`` (a guest shell string) with its stdout held in the guest's shell until it
    exits, then printed at once; its exit status is the command's, its stderr (a tool's
    complaints, not its data) is not held.

    For a tool that prints while it measures (ping: one line per reply): streamed, each line
    crosses SSH, the guest's sshd and the management NIC inside the measured window, and the
    guest's vCPUs, woken for it, answer the device under test faster. Measured on virtio-net
    under TCG, ping guest-to-host every 10 ms: rtt_p50 17 % lower streamed than held, 12 of 12
    alternating repetitions in one guest. Held, the window sees only the probe, as in the raw
    QEMU reference (bench/bench_reference.py). The output is bounded by the tool's own spec. A
    subshell: its ``exit`` ends only itself, so the command can sit inside a larger script."""
    return f'(o=$({command}); s=$?; printf "%s\\n" "$o"; exit $s)'


def one_line(text: object, limit: int = MAX_TOOL_TEXT) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def nonnegative_number(value: object, not_a_number: str, corrupt: str) -> float:
    """``value`` as a finite float >= 0 (an overflowing int counts as infinite).

    The messages are format strings with ``{value}`` (repr) and ``{shown}`` (repr on one line,
    at most 60 characters): ProbeError(``not_a_number``) for a bool or a non-number,
    ProbeError(``corrupt``) for NaN, infinity or a negative number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProbeError(not_a_number.format(value=repr(value), shown=one_line(repr(value))[:60]))
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise ProbeError(corrupt.format(value=repr(value), shown=one_line(repr(value))[:60]))
    return number


def nearest_rank(values: list[float], percent: float) -> float:
    """The percentile every round-trip metric uses (ping's and the byte stream's ``rtt_p50`` and
    ``rtt_p99``): the sorted value at 1-based rank ``ceil(percent/100 * n)``, a value measured."""
    if not values or not 0 < percent <= 100:
        raise ProbeError(f"cannot take the {percent} percentile of {len(values)} values")
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100.0 * len(ordered)))
    return ordered[rank - 1]


def finite_sample(workload: str, metric: str, value: float, unit: str, corrupt: str) -> Sample:
    """A sample of a finite ``value``; ProbeError(``corrupt`` with ``{metric}``) otherwise."""
    if not math.isfinite(value):
        raise ProbeError(corrupt.format(metric=metric))
    return Sample(workload, metric, float(value), unit)


def section(doc: dict, key: str, missing: str) -> dict:
    """``doc[key]`` when it is a JSON object; ProbeError(``missing``) otherwise."""
    value = doc.get(key)
    if not isinstance(value, dict):
        raise ProbeError(missing)
    return value


# Where an executor leaves why exit metrics are absent from its unit (the session records it).
EXITS_ABSENT_FACT = "kvm_exits_absent"


def exit_samples(workload: str, rates: Any, ops_per_s: float, facts: dict) -> list[Sample]:
    """KVM exits per operation from a window's per-second rates (``rates``: an
    :class:`vbench.workloads.base.ExitRates`) and the operations per second of the same window.
    Why any metric is absent goes to ``facts[EXITS_ABSENT_FACT]``; nothing is ever a stand-in 0."""
    absent = dict(rates.absent())
    per_s = rates.per_second()
    if ops_per_s <= 0:
        absent.update({m: "no operations in the measured window" for m in per_s})
        per_s = {}
    if absent:
        facts[EXITS_ABSENT_FACT] = absent
    return [Sample(workload, m, r / ops_per_s, metric_unit(m)) for m, r in per_s.items()]
