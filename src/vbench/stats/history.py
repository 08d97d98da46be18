"""History of a scenario over its runs: per-run levels with intervals, steps, and what changed.

:func:`change_points` finds where a new level starts in a series of per-run estimates, each
weighted by its own interval. The method is a penalised piecewise-constant fit, solved exactly by
dynamic programming (optimal partitioning, as asv's ``step_detect.py`` does with its L1 fit):

* values on the log scale (a step is relative); each run ``i`` has the variance ``v_i`` of its own
  estimate (from its repetitions), plus a between-run variance ``tau^2`` (host drift from night to
  night, which a run's own repetitions cannot see), estimated robustly from successive
  differences; each point weighs ``1 / (v_i + tau^2)``;
* a segment costs its weighted sum of squares around its weighted mean; every extra segment costs
  a penalty ``beta(n)``, calibrated by simulation so that a flat series of 20 runs shows a false
  step in under 1 % of cases (see ``bench/bench_gate.py``);
* the noise is estimated twice: from successive differences for a first fit, then from the
  residuals around that fit (every point counts, steps do not inflate it) for the final one;
* a run more than 5 noise units from its running median of 5 is an outlier and weighs nothing, so
  one odd night is not a step; segments hold at least ``min_size`` runs; steps smaller than
  ``min_rel_step`` are dropped.

False steps are controlled per page, not per series: a history page shows every series of a
scenario (about 32), so each extra segment costs ``2.5 ln(series)`` more (:func:`penalty`), and
the newest run is tested on its own (:func:`newest_step`) against the level of the last segment
at half the page's level (the other half is the fit's): a prediction t-test whose noise is the
segment's run-level spread (each run's own noise and the night-to-night component together), so
a step at last night shows up the next morning, where the fit needs two runs on each side of a
step.

Unlike a 3-sigma rule on single points, the fit compares segment means: a step smaller than the
point noise is found once enough runs on each side make their means precise.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from vbench.stats import inference as stats
from vbench.core import policy
from vbench.stats.summary import _groups, prepare

SERIES_KEYS = list(policy.SERIES_KEYS)
# Facts of run.json's environment whose change is worth naming at a step.
ENV_FACTS = (("qemu_version", "QEMU"), ("libvirt_version", "libvirt"),
             ("host_kernel", "host kernel"), ("guest_kernel", "guest kernel"),
             ("accelerator", "accelerator"), ("cpu_model", "CPU"),
             ("fio_version_host", "fio"), ("vbench_version", "vbench"), ("guest_image_key", "image"),
             ("test_network", "test network"), ("host_scheduler", "host scheduler"),
             ("probe_methods", "probe methods"))
OUTLIER = 5.0


PAGE_ALPHA = 0.05   # false steps per page (all series of a scenario together)


def penalty(n: int, series: int = 1) -> float:
    """The cost of one more segment for a series of ``n`` points on a page of ``series`` series
    (in chi-square units): calibrated at one series to under 1 % false steps per flat series of
    20 runs, and ``2.5 ln(series)`` more so that a page of them stays near that."""
    return 7.5 + 3.0 * math.log(max(n, 2)) + 2.5 * math.log(max(series, 1))


def newest_step(series: Sequence[float], variances: Sequence[float] | None = None,
                series_on_page: int = 1, min_rel_step: float = 0.03,
                alpha: float = PAGE_ALPHA / 2) -> float | None:
    """The step of the newest run against the level of the last segment before it (as a
    relative change), or None when it is not one: the newest run differs from that level by more
    than its noise allows at ``alpha`` per page (Bonferroni over ``series_on_page``) and by at
    least ``min_rel_step``. Needs at least 3 earlier runs."""
    arr = np.asarray(list(series), dtype=float)
    var_all = None if variances is None else np.asarray(list(variances), dtype=float)
    if arr.size < 4 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        return None
    y = np.log(arr)
    prev = change_points(arr[:-1].tolist(), None if var_all is None else var_all[:-1].tolist(),
                         min_rel_step=min_rel_step, series_on_page=series_on_page)
    start = prev[-1] if prev else 0
    seg = y[start:-1]
    # one odd night in the segment (far from its running median) is left out, as in the fit
    floor = 1e-3
    var = _noise(y[:-1], None if var_all is None else var_all[:-1], floor)
    seg = seg[_weights(y[:-1], var)[start:] > 0]
    if seg.size < 3:
        return None
    # The newest run is a new draw of the segment's runs: its spread around the segment's level is
    # the segment's run-level spread (each run's own noise AND the night-to-night component,
    # whatever their sizes), estimated by the segment's sample variance; a prediction test, exact
    # Student's t with size - 1 df for normal run levels.
    level = float(np.mean(seg))
    s2 = max(float(np.var(seg, ddof=1)), floor ** 2)
    t = (y[-1] - level) / math.sqrt(s2 * (1.0 + 1.0 / seg.size))
    crit = stats.t_quantile(1 - alpha / (2 * max(series_on_page, 1)), seg.size - 1)
    step = math.expm1(y[-1] - level)
    return step if abs(t) > crit and abs(step) >= min_rel_step else None


def _noise(y: np.ndarray, variances: np.ndarray | None, floor: float,
           s2: float | None = None) -> np.ndarray:
    """Per-point variance: own variance plus between-run variance (or the point noise ``s2``,
    by default estimated robustly from successive differences)."""
    if s2 is None:
        diffs = np.abs(np.diff(y))
        s2 = (1.4826 * float(np.median(diffs)) / math.sqrt(2)) ** 2 if diffs.size else 0.0
    if variances is None or not np.isfinite(variances).any():
        return np.full(y.size, max(s2, floor ** 2))
    v = np.where(np.isfinite(variances), variances, np.nanmedian(variances))
    # A run's own variance from 3-5 repetitions is itself noisy (chi-square with 2-4 df): shrink
    # it toward the series' typical one so that a lucky tight run does not outweigh the rest.
    v = (v + 2.0 * float(np.median(v))) / 3.0
    tau2 = max(0.0, s2 - float(np.median(v)))
    return np.maximum(v + tau2, floor ** 2)


def _weights(y: np.ndarray, var: np.ndarray) -> np.ndarray:
    """1 / variance, 0 for outliers (far from their running median of 5)."""
    n = y.size
    rm = np.array([np.median(y[max(0, i - 2):min(n, i + 3)]) for i in range(n)])
    w = 1.0 / var
    w[np.abs(y - rm) > OUTLIER * np.sqrt(var)] = 0.0
    return w


def _optimal_partition(y: np.ndarray, w: np.ndarray, beta: float, min_size: int) -> list[int]:
    """Exact minimiser of sum of weighted segment costs + beta per segment (O(n^2), vectorised)."""
    n = y.size
    cw = np.concatenate([[0.0], np.cumsum(w)])
    cy = np.concatenate([[0.0], np.cumsum(w * y)])
    cyy = np.concatenate([[0.0], np.cumsum(w * y * y)])
    best = np.full(n + 1, math.inf)
    best[0] = -beta
    prev = np.zeros(n + 1, dtype=int)
    for t in range(min_size, n + 1):
        s = np.arange(0, t - min_size + 1)
        s = s[(s == 0) | (s >= min_size)]
        sw, sy, syy = cw[t] - cw[s], cy[t] - cy[s], cyy[t] - cyy[s]
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = np.where(sw > 0, syy - sy * sy / sw, 0.0)
        total = best[s] + np.maximum(cost, 0.0) + beta
        j = int(np.argmin(total))
        best[t], prev[t] = total[j], s[j]
    cps, t = [], n
    while t > 0:
        t = int(prev[t])
        if t > 0:
            cps.append(t)
    return sorted(cps)


def _residual_variance(y: np.ndarray, w: np.ndarray, found: list[int]) -> float:
    """Point variance around a fitted step function (outliers left out): unlike successive
    differences it is not inflated by the steps, and it uses every point."""
    bounds = [0] + found + [y.size]
    res, used = [], 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        keep = w[a:b] > 0
        if keep.any():
            seg = y[a:b][keep]
            res.append(seg - seg.mean())
            used += 1
    r = np.concatenate(res) if res else np.array([])
    return float(np.sum(r * r)) / max(1, r.size - used)


def _level(y: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * y) / np.sum(w)) if np.sum(w) > 0 else float(np.median(y))


def change_points(series: Sequence[float], variances: Sequence[float] | None = None,
                  min_rel_step: float = 0.03, min_size: int = 2,
                  beta: float | None = None, series_on_page: int = 1) -> list[int]:
    """Positions where a new level starts in a series of per-run estimates (oldest first).

    ``variances``: each point's own variance on the log scale (for positive series) or raw scale
    (see :func:`run_levels`); None: estimated from the series. Non-finite values are skipped; the
    returned index ``i`` is a position in the given series, ``series[i]`` the first value of the
    new level.
    """
    arr = np.asarray(list(series), dtype=float)
    where = np.flatnonzero(np.isfinite(arr))
    if where.size < 2 * min_size:
        return []
    x = arr[where]
    logs = bool(np.all(x > 0))
    y = np.log(x) if logs else x
    var_in = None if variances is None else np.asarray(list(variances), dtype=float)[where]
    floor = 1e-3 if logs else 1e-3 * max(float(np.median(np.abs(x))), 1e-12)
    beta = penalty(y.size, series_on_page) if beta is None else beta
    w = _weights(y, _noise(y, var_in, floor))
    found = _optimal_partition(y, w, beta, min_size)
    # second pass: the noise re-estimated around the first fit
    w = _weights(y, _noise(y, var_in, floor, _residual_variance(y, w, found)))
    found = _optimal_partition(y, w, beta, min_size)
    kept: list[int] = []
    bounds = [0] + found + [y.size]
    for j, k in enumerate(found, start=1):
        a = _level(y[bounds[j - 1]:k], w[bounds[j - 1]:k])
        b = _level(y[k:bounds[j + 1]], w[k:bounds[j + 1]])
        rel = math.expm1(b - a) if logs else ((b - a) / abs(a) if a else math.inf)
        if abs(rel) >= min_rel_step:
            kept.append(int(where[k]))
    return kept


def run_levels(values: np.ndarray) -> tuple[float, float, float, float, float]:
    """(median, level, variance of the level's log, interval low, interval high) of one run.

    ``level`` is the geometric mean (the estimate of the population median under log-normal
    noise) when every value is positive, else the median; its variance is that of the mean of the
    logs, so the two agree (a sample median varies ~1.4-1.6x more than the mean it would stand
    for, which made short runs look more certain than they are).
    """
    x = np.asarray(values, dtype=float)
    med = float(np.median(x))
    lo, hi, _method = stats.median_interval(x)
    if x.size >= 2 and stats.positive(x):
        logs = np.log(x)
        return med, float(np.exp(np.mean(logs))), float(np.var(logs, ddof=1)) / x.size, lo, hi
    return med, med, math.nan, lo, hi


def run_to_run_sd(df: pd.DataFrame, metrics: Sequence[str] | None = None) -> tuple[float, int]:
    """(run-to-run log sd, runs) over the runs in ``df`` (one scenario and environment): a
    random-effects (DerSimonian-Laird) estimate of the between-run variance of each series'
    per-run level (geometric mean, its own variance from its repetitions), the median over the
    series (only ``metrics`` when given). NaN with fewer than 3 runs."""
    d = prepare(df)
    if metrics is not None:
        d = d[d["metric"].isin(list(metrics))]
    runs = int(d["run_id"].nunique()) if len(d) else 0
    if runs < 3:
        return math.nan, runs
    vals = d["value"].to_numpy(dtype=float)
    taus = []
    series: dict[tuple, list[tuple[float, float]]] = {}
    for key, pos in _groups(d, SERIES_KEYS + ["run_id"]):
        _med, level, var, _lo, _hi = run_levels(vals[pos])
        if math.isfinite(var) and var > 0 and level > 0:
            series.setdefault(tuple(key[:-1]), []).append((math.log(level), var))
    for points in series.values():
        if len(points) < 3:
            continue
        y = np.array([p[0] for p in points])
        w = 1.0 / np.array([p[1] for p in points])
        mean = float(np.sum(w * y) / np.sum(w))
        q = float(np.sum(w * (y - mean) ** 2))
        c = float(np.sum(w) - np.sum(w ** 2) / np.sum(w))
        taus.append(max(0.0, (q - (len(points) - 1)) / c) if c > 0 else 0.0)
    return (math.sqrt(float(np.median(taus))) if taus else math.nan), runs


def environment_facts(environment: Mapping | None, extra: Mapping | None = None) -> dict:
    """The facts of a run's ``environment`` named at a step, and those of its record that live
    elsewhere (``extra``: the guest kernel, the probes' methods)."""
    env = dict(environment or {})
    for key, value in (extra or {}).items():
        env.setdefault(key, value)
    return {label: str(env[key]) for key, label in ENV_FACTS if env.get(key) not in (None, "")}


def environment_change(before: Mapping | None, after: Mapping | None) -> str:
    """"QEMU 7.2 -> 8.0; host kernel 6.1 -> 6.5" between two runs' facts ('' when none known)."""
    a, b = dict(before or {}), dict(after or {})
    if not a or not b:
        return ""
    parts = [f"{k} {a.get(k, '?')} -> {b.get(k, '?')}" for k in dict.fromkeys([*a, *b])
             if a.get(k) != b.get(k)]
    return "; ".join(parts) if parts else "no recorded change"


def _series_points(d: pd.DataFrame, rank: dict, dates: Mapping) -> pd.DataFrame:
    rows = []
    vals = d["value"].to_numpy(dtype=float)
    for key, pos in _groups(d, SERIES_KEYS + ["run_id"]):
        med, level, var, lo, hi = run_levels(vals[pos])
        run = key[-1]
        rows.append((*key, rank[run], med, level, int(pos.size), lo, hi, var, dates.get(run)))
    cols = SERIES_KEYS + ["run_id", "position", "median", "level", "n", "ci_low", "ci_high",
                          "var_log", "date"]
    points = pd.DataFrame(rows, columns=cols)
    return points.sort_values(SERIES_KEYS + ["position"], kind="stable").reset_index(drop=True)


def history_table(df: pd.DataFrame, run_order: Sequence[str] | None = None,
                  min_rel_step: float = 0.03, run_dates: Mapping[str, str] | None = None,
                  environments: Mapping[str, Mapping] | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-run levels per series (workload, metric, variant, accelerator, host) in run order, and
    the steps of each series.

    ``points``: the series keys, run_id, position (0-based in ``run_order``; default: run ids
    sorted), median, level (see :func:`run_levels`), n, ci_low/ci_high (95 % interval of the run's
    median), var_log, date (from
    ``run_dates``). ``changes``: the series keys, position, run_id, previous_run, before and after
    (the two segments' levels), step (after / before - 1), environment (what changed between
    the two runs around the step, from ``environments``: run id -> facts such as
    :func:`environment_facts` returns).
    """
    d = prepare(df)
    order = list(run_order) if run_order is not None else sorted(d["run_id"].unique())
    rank = {r: i for i, r in enumerate(order)}
    d = d[d["run_id"].isin(rank)]
    points = _series_points(d, rank, dict(run_dates or {}))
    envs = dict(environments or {})
    changes = []
    groups = _groups(points, SERIES_KEYS)
    for key, pos in groups:
        s = points.iloc[pos]
        meds = s["median"].to_numpy(dtype=float)
        levels, var_log = s["level"].to_numpy(dtype=float), s["var_log"].to_numpy(dtype=float)
        found = change_points(levels, var_log, min_rel_step=min_rel_step,
                              series_on_page=len(groups))
        if not found or found[-1] != len(meds) - 1:
            newest = newest_step(levels, var_log, len(groups), min_rel_step)
            if newest is not None:
                found = found + [len(meds) - 1]
        bounds = [0] + found + [len(meds)]
        for j, i in enumerate(found, start=1):
            before = float(np.nanmedian(meds[bounds[j - 1]:i]))
            after = float(np.nanmedian(meds[i:bounds[j + 1]]))
            run, prev = s["run_id"].iloc[i], s["run_id"].iloc[i - 1]
            changes.append((*key, int(s["position"].iloc[i]), run, prev, before, after,
                            after / before - 1 if before else math.nan,
                            environment_change(envs.get(prev), envs.get(run))))
    ch = pd.DataFrame(changes, columns=SERIES_KEYS + ["position", "run_id", "previous_run",
                                                      "before", "after", "step", "environment"])
    return points, ch
