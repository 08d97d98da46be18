"""Small-sample statistics that stand alone: tests, intervals, corrections, detectable change.

Nothing here knows about runs, scenarios or pandas: numbers in, numbers out (numpy and scipy only),
so the methods can be checked against references and simulated on their own (``bench/bench_gate.py``).

Choices worth knowing (and why):

* **Welch's t on logarithms.** Repeated runs of one benchmark on one host are close to log-normal
  (a relative spread, one-sided slow outliers). On logs, the difference of means estimates the log
  of the ratio of the two *population medians* (for a log-normal the median is exp(mean log)), so
  the test, the interval and the point estimate all talk about the same quantity. Welch rather
  than pooled Student's t: when the two sides do not share one spread (5 vs 3 repetitions, a 4:1
  variance ratio) the pooled test's false alarms reach 8-14 %; Welch's keeps its level. Its
  interval covers 96.6 % at 3 vs 3 and 95.7 % at 5 vs 5 under log-normal noise (simulated).
  Values <= 0 (loss, retransmits) are tested on the raw scale as a difference of means.
* **Interval of one group's median.** A t interval on the logs (exact under log-normal noise at
  every n: 95 % means 95 %). Order statistics were considered: below n = 6 the only one is
  ``[min, max]`` (75 % at n = 3), and above it their coverage jumps between levels (97.9 % or
  89 % at n = 10), so they serve only samples holding values <= 0, from n = 6 (coverage exact and
  distribution free: ``1 - 2 * P(Binomial(n, 1/2) < k)``).
* **Multiple testing**: Benjamini-Hochberg (false discovery rate) or Holm (family-wise error)
  adjusted p-values; a NaN p-value is not a test.
* **Smallest detectable change**: the true change that a row would call significant with 80 %
  power at its (corrected) level, from its own standard error and degrees of freedom:
  ``(t(1 - a/2, df) + t(power, df)) * se``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import numpy.typing as npt

CONFIDENCE = 0.95
POWER = 0.80
MIN_REPS = 3            # fewer repetitions per side than this: no gate (verdict inconclusive)
N_BOOT = 2000
SEED = 20261126

# A group of samples: a list or a numpy array.
Values = Sequence[float] | npt.NDArray[np.float64]


# ---- t distribution (scipy, cached: a compare asks for the same few quantiles many times) -------

@lru_cache(maxsize=4096)
def t_quantile(q: float, df: float) -> float:
    """Quantile ``q`` of Student's t with ``df`` degrees of freedom (normal when df is infinite).

    scipy.special's ufuncs rather than scipy.stats.t: the same numbers without the distribution
    object's per-call argument checks (a compare, and the simulations of bench/bench_gate.py, make
    many thousands of these calls)."""
    from scipy import special

    if not math.isfinite(df):
        return float(special.ndtri(q))
    return float(special.stdtrit(df, q))


def t_two_sided_p(t: float, df: float) -> float:
    from scipy import special

    if not math.isfinite(df):
        return float(2 * special.ndtr(-abs(t)))
    return float(2 * special.stdtr(df, -abs(t)))


# ---- Welch's test ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Welch:
    """Welch's two-sample t on one scale: ``estimate`` = mean(new) - mean(base)."""

    estimate: float
    se: float
    df: float
    p: float
    low: float
    high: float
    scale: str          # "log" (estimate is a log ratio) or "abs" (a difference of raw values)

    @property
    def halfwidth(self) -> float:
        return 0.5 * (self.high - self.low)


def positive(*samples: np.ndarray) -> bool:
    return all(np.asarray(s).size and bool(np.all(np.asarray(s) > 0)) for s in samples)


def welch(base: Values, new: Values, confidence: float = CONFIDENCE,
          scale: str = "auto") -> Welch:
    """Welch's t-test and interval of mean(new) - mean(base), on logs when ``scale`` is "log"
    (or "auto" and every value is positive), else on the raw values.

    Zero spread on both sides gives an exact answer (p 1 or 0, a zero-width interval). Fewer than
    2 values on a side: NaN everywhere.
    """
    x = np.asarray(base, dtype=float)
    y = np.asarray(new, dtype=float)
    if scale == "auto":
        scale = "log" if positive(x, y) else "abs"
    if scale == "log":
        x, y = np.log(x), np.log(y)
    nan = math.nan
    if x.size < 2 or y.size < 2:
        return Welch(nan, nan, nan, nan, nan, nan, scale)
    d = float(np.mean(y) - np.mean(x))
    vx, vy = float(np.var(x, ddof=1)) / x.size, float(np.var(y, ddof=1)) / y.size
    se = math.sqrt(vx + vy)
    if se <= 1e-12 * max(1.0, abs(d)):
        return Welch(d, 0.0, math.inf, 1.0 if d == 0 else 0.0, d, d, scale)
    df = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1))
    half = t_quantile(0.5 + confidence / 2, df) * se
    return Welch(d, se, df, t_two_sided_p(d / se, df), d - half, d + half, scale)


def detectable(se: float, df: float, alpha: float, power: float = POWER) -> float:
    """Smallest true difference (on the test's scale) found significant at two-sided ``alpha``
    with probability ``power``; NaN without a standard error."""
    if not (math.isfinite(se) and df > 0):
        return math.nan
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se


# ---- intervals of one group -------------------------------------------------------------------

@lru_cache(maxsize=1024)
def order_statistic_rank(n: int, confidence: float = CONFIDENCE) -> tuple[int, float] | None:
    """The largest k with ``[x(k), x(n-k+1)]`` (1-based) covering the median with at least
    ``confidence``, and that exact coverage; None when even [min, max] falls short."""
    from scipy import stats

    best = None
    for k in range(1, n // 2 + 1):
        cover = 1.0 - 2.0 * float(stats.binom.cdf(k - 1, n, 0.5))
        if cover >= confidence - 1e-12:
            best = (k, cover)
    return best


def median_interval(values: Values, confidence: float = CONFIDENCE
                    ) -> tuple[float, float, str]:
    """(low, high, method) of an interval for the population median of one group.

    ``t-log``: t interval of exp(mean log) (positive samples: exact under log-normal noise at any
    n); ``order``: exact order statistics (samples holding values <= 0, n >= 6 at 95 %);
    ``t``: t interval of the mean (smaller such samples); ``none``: fewer than 2 values.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    if n == 0:
        return (math.nan, math.nan, "none")
    if n < 2:
        return (float(x[0]), float(x[0]), "none")
    logs = positive(x)
    ranks = None if logs else order_statistic_rank(n, confidence)
    if ranks is not None:
        k = ranks[0]
        return (float(x[k - 1]), float(x[n - k]), "order")
    z = np.log(x) if logs else x
    half = t_quantile(0.5 + confidence / 2, n - 1) * float(np.std(z, ddof=1)) / math.sqrt(n)
    m = float(np.mean(z))
    if logs:
        return (math.exp(m - half), math.exp(m + half), "t-log")
    return (m - half, m + half, "t")


def relative_halfwidth(values: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the t interval on logs of one group, as a fraction (0.05 = +-5 %)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2 or not positive(x):
        return math.nan
    half = t_quantile(0.5 + confidence / 2, x.size - 1) * float(np.std(np.log(x), ddof=1)) \
        / math.sqrt(x.size)
    return math.expm1(half)


# ---- multiple testing -------------------------------------------------------------------------

CORRECTIONS = ("bh", "holm", "none")


def adjust_p(pvalues: Iterable[float], method: str = "bh") -> list[float]:
    """Multiple-testing adjusted p-values (NaN stays NaN and does not count as a test).

    ``bh``: Benjamini-Hochberg step-up, ``holm``: Holm-Bonferroni step-down, ``none``: unchanged.
    """
    p = np.asarray(list(pvalues), dtype=float)
    out = p.copy()
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}")
    if method == "none" or m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    ps = p[order]
    ranks = np.arange(1, m + 1)
    if method == "bh":
        adj = np.minimum.accumulate((ps * m / ranks)[::-1])[::-1]
    else:
        adj = np.maximum.accumulate(ps * (m - ranks + 1))
    out[order] = np.minimum(adj, 1.0)
    return out.tolist()


# ---- bootstrap (kept for ratios of groups holding values <= 0, where logs are undefined) -------

@lru_cache(maxsize=512)
def _boot_positions(n: int, n_boot: int, seed: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Order positions (lower, upper middle) of the median of ``n_boot`` resamples of size ``n``:
    resampling a sorted sample and taking the median equals ``(xs[lo] + xs[hi]) / 2``."""
    rng = np.random.default_rng([seed, n, stream])
    draws = np.sort(rng.integers(0, n, size=(n_boot, n)), axis=1)
    lo = draws[:, (n - 1) // 2].copy()
    hi = draws[:, n // 2].copy()
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


def boot_medians(values: np.ndarray, n_boot: int = N_BOOT, seed: int = SEED,
                 stream: int = 0) -> np.ndarray:
    """Bootstrap distribution of the median of ``values`` (deterministic for a given seed)."""
    xs = np.sort(np.asarray(values, dtype=float))
    if xs.size == 0:
        return np.full(n_boot, np.nan)
    lo, hi = _boot_positions(xs.size, n_boot, seed, stream)
    return 0.5 * (xs[lo] + xs[hi])


def percentile_interval(dist: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval (numpy's default linear interpolation, without its per-call overhead)."""
    dist = np.sort(dist[np.isfinite(dist)])
    n = dist.size
    if n == 0:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0
    out = []
    for q in (tail, 1.0 - tail):
        h = (n - 1) * q
        i = int(math.floor(h))
        j = min(i + 1, n - 1)
        out.append(float(dist[i] + (h - i) * (dist[j] - dist[i])))
    return (out[0], out[1])


def ratio_interval(num: Values, den: Values, confidence: float = CONFIDENCE,
                   n_boot: int = N_BOOT, seed: int = SEED) -> tuple[float, float]:
    """Interval of the ratio of the population medians num / den: Welch on logs for positive
    samples (coverage real at n = 3), else a percentile bootstrap of the ratio of sample medians."""
    x, y = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if x.size >= 2 and y.size >= 2 and positive(x, y):
        w = welch(y, x, confidence, scale="log")
        return (math.exp(w.low), math.exp(w.high))
    bx = boot_medians(x, n_boot, seed, stream=1)
    by = boot_medians(y, n_boot, seed, stream=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return percentile_interval(bx / by, confidence)
