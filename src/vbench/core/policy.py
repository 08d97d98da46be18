"""The gating and pooling policy: the one home of every rule that decides what a comparison gates,
what fails it, and which runs may be pooled or compared at all.

Everything that gates (``vbench compare`` text, JSON and JUnit, ``vbench ab``, adaptive
repetitions, the nightly summary, ``bench/bench_gate.py``) imports these facts; a unit test
(tests/unit/test_policy.py) fails when one of them is defined anywhere else.

* :data:`HOST_VARIANT`: the name of the host-native baseline variant (never gated).
* :data:`DEFAULT_GATE_METRICS`: the primary metrics per device kind, gated when a scenario's
  ``gate:`` names no ``metrics`` (whatever else it names: variants, workloads, threshold).
* :data:`ALPHA`, :data:`DEFAULT_THRESHOLD`, :data:`EQUIVALENCE_CONFIDENCE`: the levels.
* :data:`VERDICTS`: the verdicts in the order a reader wants them; :func:`fails_gate`: which of
  them fail the gate (``allow_inconclusive`` respected by every caller).
* :data:`SERIES_KEYS` / :data:`CONTEXT`: what identifies one series of numbers; numbers of
  different contexts are never pooled.
* :data:`CHECKED_METADATA`: the environment facts that must match before runs are pooled or
  compared (refused in one line unless the user says ``--allow-mixed``).

The regression rule (one sentence): **a gated row is a regression when its change is significant
(adjusted p below alpha) and its whole 90 % interval lies beyond the threshold in the bad
direction; it is unchanged when that interval lies within +-threshold; otherwise it is
inconclusive (or an improvement).** The same 90 % interval decides both ends: "regression" is a
one-sided test at alpha 0.05 that the change is beyond the threshold, "unchanged" the TOST that it
is within. Trade-off: the interval of two separate runs carries the run-to-run component (2 % a
run by default), so a change must clear the threshold by about 1.6 of its standard errors: with
the nightly's settings a drop of 1.5x the threshold on every gated row fails 85-100 % of nights,
on one row only about 65 % (one compare: 80 % power from a 17 % drop), and a change between the
threshold and that is "inconclusive". In return a change of half the threshold is never called a
regression, also when nights differ by more than their repetitions say: with "significant and the
estimate beyond the threshold" a 5 % drop failed 23 % of nights under a 2 % night-to-night shift
(4 gated rows x 2 compares a night, each ~5 % likely to land past -10 %).
"""

from __future__ import annotations

from typing import Iterable, Mapping

HOST_VARIANT = "host"

ALPHA = 0.05
DEFAULT_THRESHOLD = 0.05
# "unchanged" is an equivalence test (TOST) at ALPHA: the (1 - 2 * ALPHA) interval within
# +-threshold.
EQUIVALENCE_CONFIDENCE = 1 - 2 * ALPHA

# Between-run variance: two separately measured runs differ by more than their repetitions say
# (the host from night to night). Compare adds 2 x tau^2 (one per run) to the variance of a
# relative change, tau estimated from the history of the same scenario and environment (random
# effects over past runs) once it holds RUN_TO_RUN_MIN_RUNS runs, else this conservative default
# (log sd 2 %: night-level shifts of that size made 12.5 % of A/A nights fail when ignored).
# `vbench ab` (one interleaved session) uses none.
RUN_TO_RUN_DEFAULT_SD = 0.02
RUN_TO_RUN_MIN_RUNS = 5

# The verdicts, in the order a reader wants them (worst first).
VERDICTS = ("regression", "inconclusive", "improvement", "unchanged", "missing")

# The primary metrics of each device kind: gated unless the scenario's `gate:` names metrics.
# Every device kind has an entry (tests/unit/test_policy.py checks against the device registry):
# a kind without one would gate nothing.
DEFAULT_GATE_METRICS: dict[str, tuple[str, ...]] = {
    "disk": ("iops", "clat_p99"),
    "pmem": ("iops", "clat_p99"),
    "fs": ("iops", "create_rate", "stat_rate", "delete_rate"),
    "nic": ("throughput", "rtt_p99", "loss", "retransmits_per_gb"),
    "rng": ("hwrng_read_rate", "crng_init_time"),
    "balloon": ("host_mem_returned", "balloon_inflate_time"),
    "mem": ("host_mem_returned", "balloon_inflate_time"),
    "console": ("g2h_throughput", "h2g_throughput"),
    "vsock": ("g2h_throughput", "h2g_throughput"),
}

# metric -> the metric it duplicates when both are gated for one workload and variant
DUPLICATES = {"bw": "iops"}

# What identifies one series of numbers (a row of a comparison, a line of history).
CONTEXT = ("accelerator", "host")
SERIES_KEYS = ("scenario", "workload", "metric", "variant") + CONTEXT

# Like pyperf's _CHECKED_METADATA: a difference in any of these makes two runs different
# experiments; numbers from them must not be pooled, and a comparison refuses them unless told.
CHECKED_METADATA: tuple[str, ...] = (
    "accelerator", "host", "cpu_model", "cpus", "host_kernel", "qemu_version", "libvirt_version",
    "guest_kernel", "guest_image_key", "nested", "test_network", "host_scheduler",
    "probe_methods",
)

# A workload kind's measuring method (``WorkloadKind.method``) starts here and is raised when a
# change to vbench changes what that kind's numbers mean; a run records each workload's method,
# and runs recorded before vbench stored it were all measured with this one.
FIRST_METHOD = 1


def default_gate_metrics(kinds: Iterable[str]) -> tuple[str, ...]:
    """The default gated metrics of the device kinds given (the host baseline's kind ignored).
    An unknown kind raises KeyError: a kind without defaults would silently gate nothing."""
    out: list[str] = []
    for kind in sorted(set(kinds) - {HOST_VARIANT}):
        if kind not in DEFAULT_GATE_METRICS:
            raise KeyError(f"device kind {kind!r} declares no default gated metrics "
                           f"(vbench.core.policy.DEFAULT_GATE_METRICS)")
        out += [m for m in DEFAULT_GATE_METRICS[kind] if m not in out]
    return tuple(out)


FAILING = ("regression", "missing")      # a gated row with these verdicts always fails the gate


def fails_gate(status: str, allow_inconclusive: bool = False) -> bool:
    """Whether a gated row with this verdict fails the gate: a regression, and a gated row
    missing on one side (a check that cannot be made is not a pass), always; an inconclusive row
    ("the data cannot rule out a change beyond the threshold") unless allowed."""
    return status in FAILING or (status == "inconclusive" and not allow_inconclusive)


def is_baseline(variant: str, device: str = "") -> bool:
    """The host-native baseline (its variant or device is named :data:`HOST_VARIANT`)."""
    return variant == HOST_VARIANT or device == HOST_VARIANT


def metadata_differences(a: Mapping[str, str | None], b: Mapping[str, str | None]
                         ) -> dict[str, tuple[str, str]]:
    """The checked facts that differ between two runs' checked metadata: key -> (a, b). A fact
    only one run recorded (older runs lack some) is not a difference: unknown is not different."""
    return {k: (str(a.get(k)), str(b.get(k))) for k in CHECKED_METADATA
            if a.get(k) is not None and b.get(k) is not None and a.get(k) != b.get(k)}


def describe_differences(diffs: Mapping[str, tuple[str, str]]) -> str:
    """One line: ``host_kernel: 6.1 vs 6.18; qemu_version: 7.2 vs 8.0``."""
    return "; ".join(f"{k}: {a} vs {b}" for k, (a, b) in diffs.items())
