"""Statistics on the tidy sample table: a facade over the modules that own each part.

* :mod:`vbench.stats` -- small-sample tests, intervals, corrections (standalone, numpy/scipy);
* :mod:`vbench.summary` -- the tidy frame, per-group summaries, virtio/emulated ratios, host
  fractions;
* :mod:`vbench.verdict` -- the verdict of one compared row (regression, improvement, unchanged,
  inconclusive) and the interval-width rule of adaptive repetitions;
* :mod:`vbench.compare` -- a new run against a base run, the gated family, the gate;
* :mod:`vbench.history` -- per-run levels, steps (change points) and what changed around them.

Existing callers keep ``from vbench import analysis`` working; new code should import the module
it needs. No I/O anywhere here.
"""

from __future__ import annotations

from .compare import (COMPARE_STATUSES, CORRECTIONS, CompareResult, Gate,  # noqa: F401
                      compare, describe_row)
from .history import change_points, environment_change, environment_facts, history_table  # noqa: F401
from .stats import (CONFIDENCE, MIN_REPS, N_BOOT, SEED, adjust_p, boot_medians,  # noqa: F401
                    median_interval, welch)
from .summary import (NOISY_CV, SUMMARY_KEYS, _groups, _nested, contexts,  # noqa: F401
                      host_fractions, prepare, ratio_ci,
                      ratio_estimate, ratios, significance, summarize)
from .verdict import Verdict, intervals_within, judge  # noqa: F401

__all__ = [
    "COMPARE_STATUSES",
    "CORRECTIONS",
    "CompareResult",
    "Gate",
    "compare",
    "describe_row",
    "CONFIDENCE",
    "MIN_REPS",
    "N_BOOT",
    "SEED",
    "adjust_p",
    "boot_medians",
    "median_interval",
    "welch",
    "NOISY_CV",
    "SUMMARY_KEYS",
    "_groups",
    "_nested",
    "contexts",
    "host_fractions",
    "prepare",
    "ratio_ci",
    "ratio_estimate",
    "ratios",
    "significance",
    "summarize",
    "change_points",
    "environment_change",
    "environment_facts",
    "history_table",
    "Verdict",
    "intervals_within",
    "judge",
]
