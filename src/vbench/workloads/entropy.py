"""Entropy: the RNG probe. Owns the POSIX sh script run in the guest (minimal Debian: coreutils,
util-linux, no python) and the parsing of the ``key=value`` lines it prints.

The script prints, between a ``vbench_probe=entropy-1`` line and a final ``probe_done=1`` line:
``hwrng_exists`` (0/1), ``rng_current`` (``absent`` when the sysfs file is missing),
``rng_available``, ``hwrng_read_bytes`` / ``hwrng_read_ns`` / ``hwrng_read_status`` (dd's exit
status, 124 on timeout, ``absent`` when there is no /dev/hwrng) / ``hwrng_read_error`` (dd's
message), ``entropy_avail``, ``kernel_release``, ``crng_init_s`` (kernel-log timestamp of
"random: crng init done", empty when dmesg cannot show it), ``uptime_s`` and ``getrandom_ns``
(written at early boot by the image's unit into /run/vbench/getrandom_ns: how long a blocking
``head -c 1 /dev/random`` waited; empty when absent).

Metrics: ``hwrng_read_rate`` (B/s, only when dd succeeded), ``crng_init_time`` (s),
``getrandom_latency`` (us), ``entropy_avail`` (bits; on kernels >= 5.18 a constant 256 once the
crng is ready, see :func:`entropy_avail_is_pinned`).
"""

from __future__ import annotations

import re

from typing import Any

from pydantic import Field

from vbench.core import procs
from vbench.core.errors import ProbeError, RemoteCommandError
from vbench.devices.base import Strict
from vbench.workloads.base import RunningUnit, WorkloadKind
from vbench.core.metrics import Sample

GETRANDOM_NS_PATH = "/run/vbench/getrandom_ns"
_BLOCK = 65536
_BEGIN = ("vbench_probe", "entropy-1")
_DONE = ("probe_done", "1")
_LINE_RE = re.compile(r"^([a-z0-9_]+)=(.*)$")
_INT_RE = re.compile(r"^\d{1,19}$")
_SECONDS_RE = re.compile(r"^\d{1,12}(?:\.\d{1,12})?$")
_RELEASE_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})")

_SCRIPT = r"""# vbench entropy probe (POSIX sh): key=value lines, last one probe_done=1
LC_ALL=C
export LC_ALL
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
hw=/sys/class/misc/hw_random
first_line() {
    if [ -r "$1" ]; then head -n 1 "$1" 2>/dev/null; else printf '%s' "$2"; fi
}
echo vbench_probe=entropy-1
if [ -e /dev/hwrng ]; then echo hwrng_exists=1; else echo hwrng_exists=0; fi
echo "rng_current=$(first_line "$hw/rng_current" absent)"
echo "rng_available=$(first_line "$hw/rng_available" '')"
if [ -e /dev/hwrng ]; then
    t0=$(date +%s%N)
    out=$(timeout -s INT -k @GRACE@ @TIMEOUT@ dd if=/dev/hwrng of=/dev/null bs=@BLOCK@ count=@COUNT@ iflag=fullblock 2>&1)
    st=$?
    t1=$(date +%s%N)
    case "$t0$t1" in
        ''|*[!0-9]*) ns= ;;
        *) ns=$((t1 - t0)) ;;
    esac
    echo "hwrng_read_bytes=$(printf '%s\n' "$out" | sed -n 's/^\([0-9][0-9]*\) bytes.* copied.*/\1/p' | tail -n 1)"
    echo "hwrng_read_ns=$ns"
    echo "hwrng_read_status=$st"
    echo "hwrng_read_error=$(printf '%s\n' "$out" | grep -E '^(dd|timeout):' | tail -n 1)"
else
    echo hwrng_read_bytes=0
    echo hwrng_read_ns=0
    echo hwrng_read_status=absent
    echo hwrng_read_error=
fi
echo "entropy_avail=$(first_line /proc/sys/kernel/random/entropy_avail '')"
echo "kernel_release=$(uname -r 2>/dev/null)"
echo "crng_init_s=$(dmesg 2>/dev/null | sed -n 's/^\[ *\([0-9][0-9]*\.[0-9]*\)\] random: crng init done.*/\1/p' | head -n 1)"
echo "uptime_s=$(cut -d ' ' -f 1 /proc/uptime 2>/dev/null)"
echo "getrandom_ns=$(first_line @GETRANDOM@ '')"
echo probe_done=1
"""


def entropy_probe_script(read_bytes: int = 1048576, timeout_s: int = 20) -> str:
    """The sh script (run it with ``sh -s`` or ``sh -c``) that prints the entropy facts.

    It reads ``ceil(read_bytes / 65536)`` blocks of 64 KiB from /dev/hwrng, giving up after
    ``timeout_s`` seconds (dd is sent SIGINT so it still reports how much it read).
    """
    if isinstance(read_bytes, bool) or not isinstance(read_bytes, int) or read_bytes < 1:
        raise ProbeError(f"hwrng read size {read_bytes!r} is invalid: give bytes >= 1")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 1:
        raise ProbeError(f"hwrng read timeout {timeout_s!r} is invalid: give seconds >= 1")
    count = -(-read_bytes // _BLOCK)
    return (
        _SCRIPT.replace("@TIMEOUT@", str(timeout_s))
        .replace("@GRACE@", str(procs.KILL_GRACE_S))  # SIGINT, not TERM: dd then says how far it got
        .replace("@BLOCK@", str(_BLOCK))
        .replace("@COUNT@", str(count))
        .replace("@GETRANDOM@", GETRANDOM_NS_PATH)
    )


def parse_entropy_facts(text: str) -> dict[str, str]:
    """All ``key=value`` lines of the probe's output as raw strings (values stripped).

    Keys: hwrng_exists, rng_current, rng_available, hwrng_read_bytes, hwrng_read_ns,
    hwrng_read_status, hwrng_read_error, entropy_avail, kernel_release, crng_init_s, uptime_s,
    getrandom_ns (plus the vbench_probe / probe_done markers). Other lines are ignored.
    """
    if not isinstance(text, str):
        raise ProbeError("entropy probe output is not text: pass the decoded stdout of the script")
    facts: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE_RE.match(line.strip())
        if match:
            facts[match.group(1)] = match.group(2).strip()
    if facts.get(_BEGIN[0]) != _BEGIN[1]:
        raise ProbeError(
            "entropy probe output lacks 'vbench_probe=entropy-1': the script did not run; run "
            "entropy_probe_script() with /bin/sh in the guest"
        )
    if facts.get(_DONE[0]) != _DONE[1]:
        raise ProbeError(
            "entropy probe output is truncated (no 'probe_done=1'): the script was killed; check "
            "the SSH command timeout is longer than the hwrng read timeout"
        )
    return facts


def parse_entropy(text: str, workload: str) -> list[Sample]:
    """Samples of one entropy probe run (see the module docstring for the metrics)."""
    facts = parse_entropy_facts(text)
    samples: list[Sample] = []
    rate = _hwrng_rate(facts)
    if rate is not None:
        samples.append(Sample(workload, "hwrng_read_rate", rate, "B/s"))
    crng = facts.get("crng_init_s", "")
    if crng:
        samples.append(Sample(workload, "crng_init_time", _seconds(crng, "crng_init_s"), "s"))
    getrandom = facts.get("getrandom_ns", "")
    if getrandom:
        latency_us = _int(getrandom, "getrandom_ns") / 1000.0
        samples.append(Sample(workload, "getrandom_latency", latency_us, "us"))
    entropy = facts.get("entropy_avail", "")
    if entropy:
        bits = float(_int(entropy, "entropy_avail"))
        samples.append(Sample(workload, "entropy_avail", bits, "bits"))
    return samples


def entropy_avail_is_pinned(kernel_release: str) -> bool:
    """True for kernels >= 5.18, where entropy_avail is a constant 256 once the crng is ready
    and says nothing about the quality of the guest's randomness."""
    match = _RELEASE_RE.match(kernel_release.strip()) if isinstance(kernel_release, str) else None
    if not match:
        raise ProbeError(
            f"kernel release {kernel_release!r} is not 'MAJOR.MINOR...': pass the output of "
            "uname -r"
        )
    return (int(match.group(1)), int(match.group(2))) >= (5, 18)


def _hwrng_rate(facts: dict[str, str]) -> float | None:
    """Bytes per second read from /dev/hwrng, or None when the read failed or did not run."""
    if facts.get("hwrng_read_status") != "0":
        return None
    read_bytes = _int(facts.get("hwrng_read_bytes", ""), "hwrng_read_bytes")
    read_ns = _int(facts.get("hwrng_read_ns", ""), "hwrng_read_ns")
    if read_bytes == 0 or read_ns == 0:
        raise ProbeError(
            f"dd read {read_bytes} bytes from /dev/hwrng in {read_ns} ns yet exited 0: the "
            "guest's dd or date is unusual (GNU coreutils needed)"
        )
    return read_bytes / (read_ns / 1e9)


def _int(value: str, key: str) -> int:
    if not _INT_RE.match(value):
        raise ProbeError(
            f"entropy probe printed {key}={value[:40]!r}, not a whole number: check the guest "
            "has GNU coreutils (date +%s%N, dd)"
        )
    return int(value)


def _seconds(value: str, key: str) -> float:
    if not _SECONDS_RE.match(value):
        raise ProbeError(
            f"entropy probe printed {key}={value[:40]!r}, not seconds: rerun the probe"
        )
    return float(value)


# ---- scenario spec and declaration ----------------------------------------------------------

class EntropySpec(Strict):
    read_bytes: int = Field(1048576, ge=4096, le=64 * 1048576)
    timeout_s: int = Field(20, ge=1, le=600)


class Entropy(WorkloadKind):
    tool = "entropy"
    spec = EntropySpec
    metrics = ("hwrng_read_rate", "crng_init_time", "ssh_ready_time", "getrandom_latency",
               "entropy_avail")
    headline = "hwrng_read_rate"
    guest_tools = ("dd", "date", "head", "sed", "timeout")

    def estimate_s(self, spec: Any, scn: Any) -> float:
        return min(float(spec.timeout_s), 10.0) + 2.0

    def run(self, scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
        """The probe script in the guest; on a guest's first unit also its time to SSH."""
        spec = w.entropy
        g = unit.guest("entropy")
        script = entropy_probe_script(spec.read_bytes, spec.timeout_s)
        res = g.run("sh -s <<'VBENCH_EOF'\n" + script + "\nVBENCH_EOF\n",
                    timeout=spec.timeout_s + 30)
        if res.timed_out:
            raise RemoteCommandError(res, f"the entropy probe did not finish in {g.name}")
        samples = parse_entropy(res.stdout, w.name)
        if g.boot_seconds and unit.facts.get("fresh_boot"):
            samples.append(Sample(w.name, "ssh_ready_time", float(g.boot_seconds), "s"))
        return samples, res.stdout


WORKLOAD = Entropy()
