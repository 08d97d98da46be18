"""Balloon: the memory give-back benchmark. Owns reading guest /proc/meminfo and the QEMU
process's /proc/PID/status, turning the measured balloon facts into samples, and the executor,
which drives the live operation of whichever device manages the guest's memory (the balloon
through libvirt setMemory, or virtio-mem) and measures around it.

The samples: guest MemTotal and QEMU's host RSS in MiB, inflate/deflate times in s, and
``host_mem_returned = host_rss_before - host_rss_shrunk`` (MiB; negative if RSS grew). Under TCG
much of QEMU's RSS is its translation cache, so only that difference means anything, and only
when the guest touched its memory before the inflate (untouched pages were never resident).
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import Field

from vbench.core.errors import ProbeError
from vbench.devices.base import Strict
from vbench.workloads.base import RunningUnit, WorkloadKind
from vbench.core.metrics import METRICS, Sample
from vbench.workloads.common import nonnegative_number

FACT_KEYS = (
    "guest_mem_before",
    "guest_mem_shrunk",
    "guest_mem_after",
    "host_rss_before",
    "host_rss_shrunk",
    "balloon_inflate_time",
    "balloon_deflate_time",
)
_KB_LINE_RE = re.compile(r"^([A-Za-z0-9_()]+):\s+(\d{1,18}) kB$")


def parse_meminfo(text: str) -> dict[str, int]:
    """The ``Name: N kB`` lines of /proc/meminfo as {name: kB}. Lines without kB (the
    HugePages_* counts) are left out."""
    if not isinstance(text, str):
        raise ProbeError("meminfo is not text: pass the decoded content of /proc/meminfo")
    values = {}
    for line in text.splitlines():
        match = _KB_LINE_RE.match(line.strip())
        if match:
            values[match.group(1)] = int(match.group(2))
    if not values:
        raise ProbeError(
            f"no 'Name: N kB' lines in {_start(text)!r}: pass the content of /proc/meminfo"
        )
    return values


def mem_total_mib(text: str) -> float:
    """MemTotal of a /proc/meminfo text, in MiB."""
    values = parse_meminfo(text)
    if "MemTotal" not in values:
        raise ProbeError("meminfo has no MemTotal line: pass the content of /proc/meminfo")
    return values["MemTotal"] / 1024.0


def parse_vm_rss_mib(proc_status_text: str) -> float:
    """VmRSS of a /proc/PID/status text, in MiB."""
    if not isinstance(proc_status_text, str):
        raise ProbeError("process status is not text: pass the content of /proc/PID/status")
    for line in proc_status_text.splitlines():
        match = _KB_LINE_RE.match(line.strip())
        if match and match.group(1) == "VmRSS":
            return int(match.group(2)) / 1024.0
    raise ProbeError(
        f"no 'VmRSS: N kB' line in {_start(proc_status_text)!r}: pass /proc/PID/status of a "
        "running QEMU (a zombie or kernel thread has no VmRSS)"
    )


def balloon_samples(workload: str, facts: dict) -> list[Sample]:
    """Samples for the facts present in ``facts`` (keys: :data:`FACT_KEYS`, values in MiB or s;
    missing or None ones are skipped), plus ``host_mem_returned`` when both RSS values exist."""
    if not isinstance(facts, dict):
        raise ProbeError(f"balloon facts must be a dict of numbers, not {type(facts).__name__}")
    unknown = sorted(str(key) for key in facts if key not in FACT_KEYS)
    if unknown:
        raise ProbeError(
            f"unknown balloon facts {', '.join(unknown)}: use only {', '.join(FACT_KEYS)}"
        )
    values = {key: _value(key, facts[key]) for key in FACT_KEYS if facts.get(key) is not None}
    samples = [Sample(workload, key, value, METRICS[key].unit) for key, value in values.items()]
    if "host_rss_before" in values and "host_rss_shrunk" in values:
        returned = values["host_rss_before"] - values["host_rss_shrunk"]
        samples.append(
            Sample(workload, "host_mem_returned", returned, METRICS["host_mem_returned"].unit)
        )
    return samples


def _value(key: str, value: object) -> float:
    return nonnegative_number(value, f"balloon fact {key}={{value}} is not a number: measure it again",
                              f"balloon fact {key}={{value}} must be a finite number >= 0")


def _start(text: str) -> str:
    return " ".join(text.split())[:60]


# ---- scenario spec and declaration ----------------------------------------------------------

class BalloonWorkSpec(Strict):
    target_mib: int = Field(512, ge=64)
    touch_mib: int = Field(600, ge=0, description="memory the guest fills and frees before inflating")
    timeout_s: int = Field(60, ge=1, le=600)


class Balloon(WorkloadKind):
    """Give memory back to the host and take it again (virtio balloon or virtio-mem)."""

    tool = "balloon"
    spec = BalloonWorkSpec
    metrics = ("balloon_inflate_time", "balloon_deflate_time", "guest_mem_before",
               "guest_mem_shrunk", "guest_mem_after", "host_rss_before", "host_rss_shrunk",
               "host_mem_returned", "balloon_supported")
    headline = "host_mem_returned"
    guest_tools = ("mount", "umount", "dd")

    def estimate_s(self, spec: Any, scn: Any) -> float:
        # filling touch_mib under TCG runs at roughly 100 MiB/s; shrinking and growing take seconds
        return 10.0 + spec.touch_mib / 100.0

    def run(self, scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
        """Shrink the guest to the target, grow it back, see what the host got back."""
        spec = w.balloon
        g = unit.guest("balloon")
        log: list[str] = []

        def guest_mem() -> float:
            return mem_total_mib(g.run("cat /proc/meminfo", timeout=20, check=True).stdout)

        # The live operation belongs to the device (balloon or virtio-mem), never to a kind here.
        control = g.memory_control(scn.guest.memory_mib, spec.target_mib)
        if control is None:
            raise ProbeError(f"no device of {g.name} gives memory back (a balloon or virtio-mem)")
        if spec.touch_mib:
            # Pages the guest never touched were never resident on the host: fill and free memory
            # first, or inflating the balloon gives nothing back and the benchmark measures nothing.
            fill = (f"set -e; d=/run/vbench-fill; mkdir -p $d; mount -t tmpfs -o "
                    f"size={spec.touch_mib + 64}M vbfill $d; dd if=/dev/zero of=$d/f bs=1M "
                    f"count={spec.touch_mib} status=none; rm $d/f; umount $d; rmdir $d")
            g.run(fill, timeout=120, check=True)
        facts: dict[str, float | None] = {"guest_mem_before": guest_mem()}
        facts["host_rss_before"] = g.qemu_rss_mib()
        ok, answer = control.give()
        log.append(answer)
        if not ok:
            facts_s = balloon_samples(w.name, {k: v for k, v in facts.items() if v is not None})
            return facts_s + [Sample(w.name, "balloon_supported", 0.0, "bool")], "\n".join(log)
        facts["balloon_inflate_time"] = control.wait(True, spec.timeout_s)
        time.sleep(1.0)  # let the guest's MemTotal and the host's RSS settle
        facts["guest_mem_shrunk"] = guest_mem()
        facts["host_rss_shrunk"] = g.qemu_rss_mib()
        ok, answer = control.take()
        log.append(answer)
        facts["balloon_deflate_time"] = control.wait(False, spec.timeout_s)
        time.sleep(1.0)
        facts["guest_mem_after"] = guest_mem()
        log.append(" ".join(f"{k}={v}" for k, v in facts.items()))
        samples = balloon_samples(w.name, {k: v for k, v in facts.items() if v is not None})
        return samples + [Sample(w.name, "balloon_supported", 1.0, "bool")], "\n".join(log)


WORKLOAD = Balloon()
