"""The verdict on one row (one workload, metric and variant) of a comparison: what the data show.

This is the stable entry point for anything that judges samples (``vbench compare``, ``vbench ab``,
adaptive repetitions):

* :func:`judge` -- base and new samples of one row -> :class:`Verdict`;
* :func:`intervals_within` -- whether every interval of a set of gated rows is narrower than a
  target (the stopping rule of adaptive repetitions).

Verdicts (a partition, checked in this order; the rule is :mod:`vbench.core.policy`'s, in one
sentence: *a regression is a significant change whose 90 % interval lies wholly beyond the
threshold*):

* ``missing``: no samples on one side.
* ``inconclusive``: fewer than :data:`~vbench.stats.inference.MIN_REPS` (3) repetitions on a side: no gate
  is attempted with fewer (reason says so).
* ``regression`` / ``improvement``: the change is significant (p-value, after the correction
  across the gated family, below alpha) **and its whole 90 % interval lies beyond +-threshold**
  (a one-sided test at alpha 0.05 that the change is beyond the threshold); the sign and the
  metric's direction say which.
* ``unchanged``: the 90 % interval of the change (an equivalence test, TOST, at alpha 0.05) lies
  within +-threshold: any change the data allow is smaller than what matters.
* ``inconclusive``: neither: the data cannot tell whether the change is beyond the threshold;
  more repetitions (see ``detectable``) can.

Trade-off: a true change exactly at the threshold is a regression at most 5 % of the time, a
change of half the threshold never; a change between the threshold and about 1.6 standard errors
beyond it is mostly inconclusive (``bench/bench_gate.py`` prints the figures; see
:mod:`vbench.core.policy`).

The change is the ratio of the geometric means (``new / base - 1``, Welch's t on logs, see
:mod:`vbench.stats.inference`; for log-normal noise the ratio of the population medians), or, for metrics
with an absolute threshold (loss in percentage points, retransmits per GB: their baseline is
often 0, where a relative change means nothing), the difference of means in the metric's unit.
The ``centre`` of each side is what the change is computed from (geometric mean, mean, or median
below two values), so the page shows the numbers its change is made of.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from vbench.stats import inference as stats
from vbench.core.policy import ALPHA, EQUIVALENCE_CONFIDENCE
from vbench.core.metrics import absolute_threshold, higher_is_better as _hib



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
    eq_low: float = math.nan    # the 90 % interval (TOST at alpha 0.05): "unchanged" when inside
    eq_high: float = math.nan
    centre: str = "none"        # what each side's centre is: geometric mean, mean or median
    centre_base: float = math.nan
    centre_new: float = math.nan
    outliers_base: int = 0      # outlying repetitions set aside (stats.outliers: stalls)
    outliers_new: int = 0


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
    detectable: float     # smallest bad change found as a regression with 80 % power (> 0)
    test: str
    higher_is_better: bool

    def as_dict(self) -> dict:
        return asdict(self)


def row_stats(base: stats.Values, new: stats.Values, *, metric: str = "",
              threshold: float = 0.05, absolute: float | None = None,
              higher_is_better: bool | None = None,
              confidence: float = stats.CONFIDENCE, between_run_sd: float = 0.0) -> RowStats:
    """Change, intervals, centres and raw p-value of one row, outlying repetitions (stalls,
    :func:`vbench.stats.inference.outliers`) set aside. ``absolute`` (default: the metric's declared
    absolute threshold) switches to the absolute scale with that threshold. ``between_run_sd``:
    the run-to-run log sd of two separately measured runs (relative rows: adds 2 sd^2 to the
    variance of the log change; see :data:`vbench.core.policy.RUN_TO_RUN_DEFAULT_SD`)."""
    x = np.asarray(base, dtype=float)
    y = np.asarray(new, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    ox, oy = stats.outliers(x), stats.outliers(y)
    rs = _row_stats(x[~ox], y[~oy], metric, threshold, absolute, higher_is_better, confidence,
                    between_run_sd)
    return replace(rs, outliers_base=int(ox.sum()), outliers_new=int(oy.sum()))


def _row_stats(x: np.ndarray, y: np.ndarray, metric: str, threshold: float,
               absolute: float | None, higher_is_better: bool | None,
               confidence: float, between_run_sd: float = 0.0) -> RowStats:
    hib = _hib(metric) if higher_is_better is None else bool(higher_is_better)
    if absolute is None:
        absolute = absolute_threshold(metric)
    nan = math.nan
    if absolute is not None:
        w = stats.welch(x, y, confidence, scale="abs")
        lo, hi = _eq_interval(w.estimate, w.se, w.df)
        return RowStats(x.size, y.size, "absolute", w.estimate, w.low, w.high, w.p, w.se, w.df,
                        "welch" if x.size >= 2 and y.size >= 2 else "none", float(absolute), hib,
                        lo, hi, *_centres(x, y, "mean"))
    if x.size < 2 or y.size < 2:
        change = _relative(x, y)
        return RowStats(x.size, y.size, "relative", change, nan, nan, nan, nan, nan, "none",
                        float(threshold), hib, nan, nan, *_centres(x, y, "median"))
    if stats.positive(x, y):
        w = stats.widen(stats.welch(x, y, confidence, scale="log"), 2 * between_run_sd ** 2,
                        confidence)
        lo, hi = _eq_interval(w.estimate, w.se, w.df)
        return RowStats(x.size, y.size, "relative", math.expm1(w.estimate), math.expm1(w.low),
                        math.expm1(w.high), w.p, w.se, w.df, "welch-log", float(threshold), hib,
                        math.expm1(lo), math.expm1(hi), *_centres(x, y, "geometric mean"))
    # values <= 0 and no absolute threshold: a difference of means relative to the base mean
    w = stats.welch(x, y, confidence, scale="abs")
    ref = abs(float(np.mean(x)))
    centres = _centres(x, y, "mean")
    if ref == 0:
        return RowStats(x.size, y.size, "relative", nan, nan, nan, w.p, nan, w.df, "welch",
                        float(threshold), hib, nan, nan, *centres)
    lo, hi = _eq_interval(w.estimate / ref, w.se / ref, w.df)
    return RowStats(x.size, y.size, "relative", w.estimate / ref, w.low / ref, w.high / ref, w.p,
                    w.se / ref, w.df, "welch", float(threshold), hib, lo, hi, *centres)


def _eq_interval(estimate: float, se: float, df: float) -> tuple[float, float]:
    """The (1 - 2 alpha) = 90 % interval of the equivalence test on the test's scale."""
    if not (math.isfinite(estimate) and math.isfinite(se)):
        return (math.nan, math.nan)
    half = stats.t_quantile(0.5 + EQUIVALENCE_CONFIDENCE / 2, df) * se if se > 0 else 0.0
    return (estimate - half, estimate + half)


def _centres(x: np.ndarray, y: np.ndarray, kind: str) -> tuple[str, float, float]:
    """(kind, centre of base, centre of new): what the change is computed from."""
    def one(v: np.ndarray) -> float:
        if not v.size:
            return math.nan
        if kind == "geometric mean":
            return float(np.exp(np.mean(np.log(v))))
        return float(np.mean(v)) if kind == "mean" else float(np.median(v))
    return kind, one(x), one(y)


def _relative(x: np.ndarray, y: np.ndarray) -> float:
    if not (x.size and y.size):
        return math.nan
    mb = float(np.median(x))
    return float(np.median(y)) / mb - 1 if mb != 0 else math.nan


def detectable_change(rs: RowStats, alpha: float, power: float = stats.POWER) -> float:
    """The smallest bad change this row finds as a regression with ``power``: significant at
    per-row level ``alpha`` AND its 90 % interval beyond the threshold (the rule of
    :func:`decide`: the larger of the two needs). A drop (as a positive fraction) for
    higher-is-better metrics, a rise for the others; absolute metrics in their unit."""
    d = stats.detectable(rs.se, rs.df, alpha, power)
    if not math.isfinite(d):
        return d
    # the near end of the 90 % interval past the threshold: (t_0.95 + t_power) se beyond it
    beyond = (stats.t_quantile(0.5 + EQUIVALENCE_CONFIDENCE / 2, rs.df)
              + stats.t_quantile(power, rs.df)) * rs.se
    if rs.scale == "absolute" or rs.test != "welch-log":
        return max(d, rs.threshold + beyond)
    bound = -math.log1p(-rs.threshold) if rs.higher_is_better else math.log1p(rs.threshold)
    d = max(d, bound + beyond)
    return -math.expm1(-d) if rs.higher_is_better else math.expm1(d)


def decide(rs: RowStats, p_adjusted: float, alpha: float = ALPHA,
           min_reps: int = stats.MIN_REPS) -> tuple[str, str]:
    """(verdict, reason) of one row from its statistics and its family-corrected p-value (the
    rule: see the module docstring and :mod:`vbench.core.policy`)."""
    thr = rs.threshold
    f = (lambda v: f"{v:+.3g}") if rs.scale == "absolute" else (lambda v: f"{v * 100:+.1f}%")
    t_txt = f"{thr:.3g}" if rs.scale == "absolute" else f"{thr * 100:.3g}%"
    if rs.n_base == 0 or rs.n_new == 0:
        return "missing", f"no samples in the {'base' if rs.n_base == 0 else 'new'} run"
    if min(rs.n_base, rs.n_new) < min_reps:
        return "inconclusive", (f"{rs.n_base} vs {rs.n_new} repetitions: no gate with fewer than "
                                f"{min_reps} per side")
    if not (math.isfinite(rs.low) and math.isfinite(rs.high) and math.isfinite(rs.change)):
        return "inconclusive", ("no interval (a zero baseline: declare an absolute threshold for "
                                "this metric)")
    significant = math.isfinite(p_adjusted) and p_adjusted < alpha
    eq = f"[{f(rs.eq_low)}, {f(rs.eq_high)}]"
    below, above = rs.eq_high < -thr, rs.eq_low > thr   # the 90 % interval wholly beyond
    if significant and (below or above):
        worse = below == rs.higher_is_better
        return ("regression" if worse else "improvement",
                f"significant (adjusted p {p_adjusted:.3g} < {alpha:g}) and the 90% interval "
                f"{eq} lies beyond {'-' if below else '+'}{t_txt}")
    if -thr <= rs.eq_low and rs.eq_high <= thr:
        return "unchanged", f"the 90% interval {eq} lies within +-{t_txt}"
    if significant:
        return "inconclusive", (f"significant (adjusted p {p_adjusted:.3g}, change "
                                f"{f(rs.change)}) but the 90% interval {eq} reaches across "
                                f"+-{t_txt}")
    return "inconclusive", (f"the 90% interval {eq} reaches past +-{t_txt} and the change is not "
                            f"significant (adjusted p {p_adjusted:.3g})")


def judge(base: Sequence[float], new: Sequence[float], *, metric: str = "",
          threshold: float = 0.05, absolute: float | None = None, alpha: float = ALPHA,
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
        pa, pb = stats.without_outliers(group[0]), stats.without_outliers(group[1])
        w = stats.welch(pa, pb, confidence, scale="log") if stats.positive(pa, pb) else None
        return math.expm1(w.halfwidth) if w is not None and math.isfinite(w.halfwidth) \
            else math.nan
    x = stats.without_outliers(group)  # a stalled repetition does not count: more rounds instead
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
