"""The verdict on one row (one workload, metric and variant) of a comparison: what the data show.

This is the stable entry point for anything that judges samples (``vbench compare``, ``vbench ab``,
adaptive repetitions):

* :func:`judge` -- base and new samples of one row -> :class:`Verdict`;
* :func:`intervals_within` -- whether every interval of a set of gated rows is narrower than a
  target (the stopping rule of adaptive repetitions).

Verdicts (a partition, checked in this order):

* ``missing``: no samples on one side.
* ``inconclusive``: fewer than :data:`~vbench.stats.inference.MIN_REPS` (3) repetitions on a side: no gate
  is attempted with fewer (reason says so).
* ``unchanged``: the whole 95 % interval of the change lies within +-threshold: any change the
  data allow is smaller than what matters.
* ``regression`` / ``improvement``: the change is significant (p-value, after the correction
  across the gated family, below alpha) and the interval is not inside +-threshold; the sign and
  the metric's direction say which.
* ``inconclusive``: neither: the interval reaches past the threshold but the change is not
  significant. The data cannot tell; more repetitions (see ``detectable``) can.

The change is the ratio of the population medians (``new / base - 1``, Welch's t on logs, see
:mod:`vbench.stats.inference`), or, for metrics with an absolute threshold (loss in percentage points,
retransmits per GB: their baseline is often 0, where a relative change means nothing), the
difference of means in the metric's unit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from vbench.stats import inference as stats
from vbench.core.metrics import absolute_threshold, higher_is_better as _hib

VERDICTS = ("regression", "inconclusive", "improvement", "unchanged", "missing")


@dataclass(frozen=True)
class RowStats:
    """The numbers of one row before the family's correction decides its verdict."""

    n_base: int
    n_new: int
    scale: str            # "relative" (change = new/base - 1) or "absolute" (new - base)
    change: float
    low: float
    high: float
    p_value: float
    se: float
    df: float
    test: str             # "welch-log", "welch" or "none"
    threshold: float
    higher_is_better: bool


@dataclass(frozen=True)
class Verdict:
    """The verdict record of one row (see the module docstring)."""

    verdict: str
    reason: str
    scale: str
    n_base: int
    n_new: int
    change: float
    low: float
    high: float
    p_value: float
    p_adjusted: float
    threshold: float
    detectable: float     # smallest bad change found with 80 % power, as a positive number
    test: str
    higher_is_better: bool

    def as_dict(self) -> dict:
        return asdict(self)


def row_stats(base: stats.Values, new: stats.Values, *, metric: str = "",
              threshold: float = 0.05, absolute: float | None = None,
              higher_is_better: bool | None = None,
              confidence: float = stats.CONFIDENCE) -> RowStats:
    """Change, interval and raw p-value of one row. ``absolute`` (default: the metric's declared
    absolute threshold) switches to the absolute scale with that threshold."""
    x = np.asarray(base, dtype=float)
    y = np.asarray(new, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    hib = _hib(metric) if higher_is_better is None else bool(higher_is_better)
    if absolute is None:
        absolute = absolute_threshold(metric)
    nan = math.nan
    if absolute is not None:
        w = stats.welch(x, y, confidence, scale="abs")
        return RowStats(x.size, y.size, "absolute", w.estimate, w.low, w.high, w.p, w.se, w.df,
                        "welch" if x.size >= 2 and y.size >= 2 else "none", float(absolute), hib)
    if x.size < 2 or y.size < 2:
        change = _relative(x, y)
        return RowStats(x.size, y.size, "relative", change, nan, nan, nan, nan, nan, "none",
                        float(threshold), hib)
    if stats.positive(x, y):
        w = stats.welch(x, y, confidence, scale="log")
        return RowStats(x.size, y.size, "relative", math.expm1(w.estimate), math.expm1(w.low),
                        math.expm1(w.high), w.p, w.se, w.df, "welch-log", float(threshold), hib)
    # values <= 0 and no absolute threshold: a difference of means relative to the base mean
    w = stats.welch(x, y, confidence, scale="abs")
    ref = abs(float(np.mean(x)))
    if ref == 0:
        return RowStats(x.size, y.size, "relative", nan, nan, nan, w.p, nan, w.df, "welch",
                        float(threshold), hib)
    return RowStats(x.size, y.size, "relative", w.estimate / ref, w.low / ref, w.high / ref, w.p,
                    w.se / ref, w.df, "welch", float(threshold), hib)


def _relative(x: np.ndarray, y: np.ndarray) -> float:
    if not (x.size and y.size):
        return math.nan
    mb = float(np.median(x))
    return float(np.median(y)) / mb - 1 if mb != 0 else math.nan


def detectable_change(rs: RowStats, alpha: float, power: float = stats.POWER) -> float:
    """The smallest bad change this row finds with ``power`` at per-row level ``alpha``: a drop
    (as a positive fraction) for higher-is-better metrics, a rise for the others; absolute
    metrics in their unit."""
    d = stats.detectable(rs.se, rs.df, alpha, power)
    if not math.isfinite(d) or rs.scale == "absolute" or rs.test != "welch-log":
        return d
    return -math.expm1(-d) if rs.higher_is_better else math.expm1(d)


def decide(rs: RowStats, p_adjusted: float, alpha: float = 0.05,
           min_reps: int = stats.MIN_REPS) -> tuple[str, str]:
    """(verdict, reason) of one row from its statistics and its family-corrected p-value."""
    thr = rs.threshold
    unit = "" if rs.scale == "absolute" else "%"
    f = (lambda v: f"{v:+.3g}") if rs.scale == "absolute" else (lambda v: f"{v * 100:+.1f}%")
    t_txt = f"{thr:.3g}" if rs.scale == "absolute" else f"{thr * 100:.3g}{unit}"
    if rs.n_base == 0 or rs.n_new == 0:
        return "missing", f"no samples in the {'base' if rs.n_base == 0 else 'new'} run"
    if min(rs.n_base, rs.n_new) < min_reps:
        return "inconclusive", (f"{rs.n_base} vs {rs.n_new} repetitions: no gate with fewer than "
                                f"{min_reps} per side")
    if not (math.isfinite(rs.low) and math.isfinite(rs.high)):
        return "inconclusive", ("no interval (a zero baseline: declare an absolute threshold for "
                                "this metric)")
    interval = f"[{f(rs.low)}, {f(rs.high)}]"
    if -thr <= rs.low and rs.high <= thr:
        return "unchanged", f"the whole 95% interval {interval} lies within +-{t_txt}"
    if math.isfinite(p_adjusted) and p_adjusted < alpha:
        worse = (rs.change < 0) == rs.higher_is_better
        return ("regression" if worse else "improvement",
                f"significant (adjusted p {p_adjusted:.3g} < {alpha:g}); interval {interval} "
                f"reaches past +-{t_txt}")
    return "inconclusive", (f"interval {interval} reaches past +-{t_txt} but the change is not "
                            f"significant (adjusted p {p_adjusted:.3g})")


def judge(base: Sequence[float], new: Sequence[float], *, metric: str = "",
          threshold: float = 0.05, absolute: float | None = None, alpha: float = 0.05,
          family_size: int = 1, p_adjusted: float | None = None,
          higher_is_better: bool | None = None, confidence: float = stats.CONFIDENCE,
          min_reps: int = stats.MIN_REPS) -> Verdict:
    """The verdict record of one row.

    ``threshold`` is relative (0.05 = 5 %) unless the metric declares an absolute threshold (or
    ``absolute`` is given). ``p_adjusted``: the row's p-value after the family's correction
    (default: the raw p-value, a family of one); ``family_size`` sets the per-row level used for
    ``detectable`` (alpha / family_size, what a single changed row needs under BH or Holm).
    """
    rs = row_stats(base, new, metric=metric, threshold=threshold, absolute=absolute,
                   higher_is_better=higher_is_better, confidence=confidence)
    padj = rs.p_value if p_adjusted is None else float(p_adjusted)
    verdict, reason = decide(rs, padj, alpha, min_reps)
    return Verdict(verdict, reason, rs.scale, rs.n_base, rs.n_new, rs.change, rs.low, rs.high,
                   rs.p_value, padj, rs.threshold,
                   detectable_change(rs, alpha / max(1, family_size)), rs.test,
                   rs.higher_is_better)


def interval_halfwidth(group: Sequence[float] | tuple[Sequence[float], Sequence[float]],
                       confidence: float = stats.CONFIDENCE) -> float:
    """Relative half-width of a gated ratio's interval (0.05 = +-5 %).

    A pair (base, new): the half-width of the ratio interval itself. One group of samples: the
    half-width a comparison of it against a baseline of the same size and spread will have
    (Welch on logs, pooled spread): what adaptive repetitions can know during a run.
    """
    if isinstance(group, tuple):
        w = stats.welch(group[0], group[1], confidence, scale="log") \
            if stats.positive(*group) else None
        return math.expm1(w.halfwidth) if w is not None and math.isfinite(w.halfwidth) \
            else math.nan
    x = np.asarray(group, dtype=float)
    if x.size < 2 or not stats.positive(x):
        return math.nan
    s = float(np.std(np.log(x), ddof=1))
    return math.expm1(stats.t_quantile(0.5 + confidence / 2, 2 * (x.size - 1)) * s
                      * math.sqrt(2.0 / x.size))


def intervals_within(groups: Iterable, target: float,
                     confidence: float = stats.CONFIDENCE) -> bool:
    """True when every group's interval half-width (see :func:`interval_halfwidth`) is at most
    ``target`` (a fraction: 0.05 means the interval is within +-5 % of its estimate). A group
    without an interval (fewer than 2 values, values <= 0) counts as not narrow enough."""
    widths = [interval_halfwidth(g, confidence) for g in groups]
    return bool(widths) and all(math.isfinite(w) and w <= target for w in widths)
