"""Tables of one or more runs: the tidy frame, per-group summaries, virtio/emulated ratios,
fractions of host-native performance. No I/O (callers load samples with
:func:`vbench.results.rundir.load_samples`).

* **Median, with an interval whose coverage is real** (:func:`vbench.stats.inference.median_interval`: exact
  order statistics from 6 samples, a t interval on logs below).
* **Ratios** are ratios of population medians estimated on logs (the geometric means' ratio),
  with Welch's interval and p-value on the logs (:mod:`vbench.stats.inference`), so the estimate, the
  interval and the test agree; samples holding values <= 0 fall back to the ratio of sample
  medians with a bootstrap interval and Welch's test on the raw values.
* **Never pool contexts.** Numbers measured under different accelerators (KVM vs TCG) or on
  different hosts are never averaged together: ``accelerator`` and ``host`` are always part of
  the grouping key, and the ``mixed_contexts`` column says when the input held more than one.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from vbench.stats import inference as stats
from vbench.core.metrics import SAMPLE_COLUMNS, higher_is_better

NOISY_CV = 0.10          # coefficient of variation above which a group is flagged noisy
N_BOOT = stats.N_BOOT
SEED = stats.SEED
CONFIDENCE = stats.CONFIDENCE

CONTEXT = ("accelerator", "host")
SUMMARY_KEYS = ("scenario", "workload", "metric", "variant", "accelerator", "host")
HOST_VARIANT = "host"

# ---- preparation -------------------------------------------------------------------------------

def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """A clean copy of a sample table: every column present, no NaN in keys, typed values.

    Missing key columns (a hand-made frame, an old run) become ``"unknown"`` rather than an error,
    so a report never crashes on one missing field. A frame this function returned is returned
    as is (it is marked in ``df.attrs``), so the functions below can each call it cheaply.
    """
    if df.attrs.get("vbench_prepared"):
        return df
    out = df.copy()
    for col in SAMPLE_COLUMNS:
        if col not in out.columns:
            out[col] = 0 if col == "repetition" else ("unknown" if col != "value" else np.nan)
    for col in SAMPLE_COLUMNS:
        if col in ("value", "repetition", "paravirtual"):
            continue
        col_v = out[col]
        if col_v.dtype != object or col_v.isna().any():
            col_v = col_v.astype(object).where(col_v.notna(), "unknown").astype(str)
        elif not all(isinstance(v, str) for v in col_v.unique()):
            col_v = col_v.astype(str)
        empty = (col_v == "").to_numpy()
        if empty.any():
            col_v = col_v.where(~empty, "unknown")
        out[col] = col_v
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    out["paravirtual"] = out["paravirtual"].map(
        lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else str(v).strip().lower() == "true")
    out = out[np.isfinite(out["value"].to_numpy(dtype=float))].reset_index(drop=True)
    out.attrs["vbench_prepared"] = True
    return out


def contexts(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The distinct (accelerator, host) pairs in a frame, sorted."""
    if len(df) == 0:
        return []
    d = df if set(CONTEXT) <= set(df.columns) else prepare(df)
    pairs = d[list(CONTEXT)].drop_duplicates()
    return sorted({(str(a), str(h)) for a, h in zip(pairs["accelerator"], pairs["host"])})


def _nested(d: pd.DataFrame, outer: Sequence[str], inner: Sequence[str]) -> list[tuple[tuple, list]]:
    """Groups by ``outer`` (sorted), each with its subgroups by ``inner``: a list of
    (inner key, device, model, paravirtual, values). One groupby for all, numpy inside."""
    if len(d) == 0:
        return []
    idx = d.groupby(list(outer) + list(inner), sort=False, dropna=False).indices
    device, model = d["device"].to_numpy(), d["model"].to_numpy()
    para = d["paravirtual"].to_numpy()
    vals = d["value"].to_numpy(dtype=float)
    out: dict[tuple, list] = {}
    no = len(outer)
    for k, pos in idx.items():
        k = k if isinstance(k, tuple) else (k,)
        p0 = pos[0]
        out.setdefault(k[:no], []).append((k[no:], device[p0], model[p0], bool(para[p0]), vals[pos]))
    for subs in out.values():
        subs.sort(key=lambda t: tuple(str(x) for x in t[0]))
    return sorted(out.items(), key=lambda kv: tuple(str(x) for x in kv[0]))


def _groups(df: pd.DataFrame, keys: Sequence[str]) -> list[tuple[tuple, np.ndarray]]:
    """(key tuple, row positions) per group, sorted by key; fast for thousands of groups."""
    if len(df) == 0:
        return []
    idx = df.groupby(list(keys), sort=True, dropna=False).indices
    out = []
    for k, pos in idx.items():
        out.append((k if isinstance(k, tuple) else (k,), np.asarray(pos)))
    out.sort(key=lambda kv: tuple(str(x) for x in kv[0]))
    return out


# ---- tests and intervals of two groups ----------------------------------------------------------

def ratio_ci(a: np.ndarray, b: np.ndarray, n_boot: int = N_BOOT, seed: int = SEED,
             confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Interval of the ratio of population medians a / b (see :func:`vbench.stats.inference.ratio_interval`)."""
    return stats.ratio_interval(a, b, confidence, n_boot, seed)


def significance(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> tuple[float, str]:
    """Two-sided p-value that a and b share their median, and the test used: Welch's t on logs
    (``welch-log``), on raw values when some are <= 0 (``welch``); NaN with fewer than 2 values a
    side (``none``). ``alpha`` is accepted for compatibility: no test is chosen by it any more."""
    w = stats.welch(b, a)
    if not math.isfinite(w.p):
        return (math.nan, "none")
    return (w.p, "welch-log" if w.scale == "log" else "welch")


def ratio_estimate(a: np.ndarray, b: np.ndarray) -> float:
    """a / b as the ratio of geometric means (positive samples), else of medians."""
    if stats.positive(a, b):
        return float(math.exp(np.mean(np.log(a)) - np.mean(np.log(b))))
    mb = float(np.median(b))
    return float(np.median(a)) / mb if mb != 0 else math.nan


# ---- summaries ----------------------------------------------------------------------------------

def summarize(df: pd.DataFrame, noisy_cv: float = NOISY_CV, by_run: bool = False,
              n_boot: int = N_BOOT, seed: int = SEED) -> pd.DataFrame:
    """One row per (scenario, workload, metric, variant, accelerator, host[, run_id]).

    Columns: the keys, device, model, paravirtual, unit, n, median, mean, std, cv, min, max,
    ci_low/ci_high (95 % interval of the median, :func:`vbench.stats.inference.median_interval`), noisy (cv > ``noisy_cv``), higher_is_better,
    mixed_contexts (the input held more than one accelerator/host; groups are kept apart).
    """
    d = prepare(df)
    keys = list(SUMMARY_KEYS) + (["run_id"] if by_run else [])
    cols = keys + ["device", "model", "paravirtual", "unit", "n", "median", "mean", "std", "cv",
                   "min", "max", "ci_low", "ci_high", "noisy", "higher_is_better", "mixed_contexts"]
    mixed = len(contexts(d)) > 1
    values = d["value"].to_numpy(dtype=float)
    device, model, para, unit = (d[c].to_numpy() for c in ("device", "model", "paravirtual", "unit"))
    rows = []
    for key, pos in _groups(d, keys):
        x = values[pos]
        n = x.size
        med = float(np.median(x))
        mean = float(np.mean(x))
        std = float(np.std(x, ddof=1)) if n > 1 else 0.0
        cv = std / abs(mean) if mean != 0 else (0.0 if std == 0 else math.inf)
        lo, hi, _method = stats.median_interval(x)
        metric = key[keys.index("metric")]
        i0 = pos[0]
        rows.append((*key, device[i0], model[i0], bool(para[i0]), unit[i0], n, med, mean, std, cv,
                     float(np.min(x)), float(np.max(x)), lo, hi, bool(cv > noisy_cv),
                     higher_is_better(metric), mixed))
    return pd.DataFrame(rows, columns=cols)


def _is_baseline(variant: str, device: str) -> bool:
    return variant == HOST_VARIANT or device == HOST_VARIANT


def references_of(records: Iterable) -> dict[str, str]:
    """{scenario name: its declared reference variant} of run records (RunRecord) that declare one."""
    return {r.scenario.name: r.scenario.reference for r in records if r.scenario.reference}


def pair_words(references: Mapping[str, str] | None) -> tuple[str, str]:
    """What the two sides of a headline ratio are called: (paravirtual, emulated), or
    (variant, reference) when a scenario declares its own ``reference:`` variant."""
    return ("variant", "reference") if references else ("paravirtual", "emulated")


def _pairs(declared: str | None, refs: set[str] | None, ref: str, ref_paravirtual: bool) -> bool:
    """Is ``ref`` a reference side: the scenario's declared reference, else an emulated variant
    (among ``refs`` when given)."""
    if declared is not None:
        return ref == declared
    return not ref_paravirtual and (refs is None or ref in refs)


def ratios(df: pd.DataFrame, reference: str | Iterable[str] | None = None, by_run: bool = False,
           alpha: float = 0.05, n_boot: int = N_BOOT, seed: int = SEED,
           references: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Paravirtual vs emulated: ratio of medians (virtio / emulated) with CI and significance.

    For each (scenario, workload, metric, accelerator, host[, run_id]), every paravirtual variant is
    set against every emulated variant of the same device kind (``reference``: only these emulated
    variant names). ``better`` is True when the ratio points the good way for the metric (above 1
    for IOPS, below 1 for latency); ``verdict`` is better/worse when also significant at ``alpha``,
    otherwise "n.s." ("insufficient" with fewer than 2 samples a side, "undefined" when the
    emulated median is 0). ``alpha`` applies per row: these ratios describe, they do not alarm.

    ``references`` maps a scenario name to the variant its scenario declares as ``reference:``;
    in that scenario every other variant of the reference's device kind is set against it,
    paravirtual or not (virtio-fs vs 9p, qcow2 vs raw: both sides are virtio).
    """
    d = prepare(df)
    refs = {reference} if isinstance(reference, str) else (set(reference) if reference else None)
    mixed = len(contexts(d)) > 1
    keys = ["scenario", "workload", "metric", "accelerator", "host"] + (["run_id"] if by_run else [])
    cols = keys + ["device", "variant", "reference", "model", "reference_model", "n", "n_reference",
                   "median", "median_reference", "ratio", "ci_low", "ci_high", "p_value", "test",
                   "significant", "better", "verdict", "higher_is_better", "mixed_contexts"]
    rows = []
    for key, subs in _nested(d, keys, ["variant"]):
        metric = key[keys.index("metric")]
        hib = higher_is_better(metric)
        by_variant = [(vk[0], dev, model, para, x) for vk, dev, model, para, x in subs
                      if not _is_baseline(vk[0], dev)]
        declared = (references or {}).get(key[0])
        for pv, dev, pmodel, is_pv, x in by_variant:
            if not (is_pv if declared is None else pv != declared):
                continue
            for ref, rdev, rmodel, r_pv, y in by_variant:
                if not _pairs(declared, refs, ref, r_pv) or rdev != dev:
                    continue
                mx, my = float(np.median(x)), float(np.median(y))
                ratio = ratio_estimate(x, y) if my != 0 else math.nan
                lo, hi = ratio_ci(x, y, n_boot, seed)
                p, test = significance(x, y, alpha)
                better = bool((ratio > 1) == hib) if np.isfinite(ratio) and ratio != 1 else False
                sig = bool(np.isfinite(p) and p < alpha)
                if x.size < 2 or y.size < 2:
                    verdict = "insufficient"
                elif not np.isfinite(ratio):
                    verdict = "undefined"  # the emulated median is 0 (e.g. no retransmits)
                elif sig and ratio != 1:
                    verdict = "better" if better else "worse"
                else:
                    verdict = "n.s."
                rows.append((*key, dev, pv, ref, pmodel, rmodel, x.size, y.size, mx, my, ratio, lo,
                             hi, p, test, sig, better, verdict, hib, mixed))
    return pd.DataFrame(rows, columns=cols)


def host_fractions(df: pd.DataFrame, by_run: bool = False, n_boot: int = N_BOOT,
                   seed: int = SEED) -> pd.DataFrame:
    """Each variant's median relative to the host-native baseline (variant "host") where present.

    ``fraction`` = variant median / host median (CI by bootstrap); ``performance`` is the fraction
    of host-native *performance*: ``fraction`` for higher-is-better metrics, its inverse for
    latency-like ones, so 1.0 means "as fast as the host" and 0.5 "half as good" for every metric.
    The baseline is matched on scenario, workload, metric, host (and run when ``by_run``) and on the
    accelerator label when the baseline rows carry the same one (the host baseline itself runs
    natively, so its rows may be labelled with the run's accelerator or not at all).
    """
    d = prepare(df)
    keys = ["scenario", "workload", "metric", "host"] + (["run_id"] if by_run else [])
    cols = keys + ["accelerator", "variant", "device", "model", "paravirtual", "median",
                   "host_median", "fraction", "ci_low", "ci_high", "performance",
                   "higher_is_better"]
    rows = []
    for key, subs in _nested(d, keys, ["variant", "accelerator"]):
        base = [(vk[1], x) for vk, dev, _m, _p, x in subs if _is_baseline(vk[0], dev)]
        if not base:
            continue
        metric = key[keys.index("metric")]
        hib = higher_is_better(metric)
        for (variant, accel), dev, model, para, x in subs:
            if _is_baseline(variant, dev):
                continue
            same = [h for a, h in base if a == accel]
            h = np.concatenate(same if same else [h for _a, h in base])
            mx, mh = float(np.median(x)), float(np.median(h))
            frac = ratio_estimate(x, h) if mh != 0 else math.nan
            lo, hi = ratio_ci(x, h, n_boot, seed)
            perf = frac if hib else (1.0 / frac if frac else math.nan)
            rows.append((*key, accel, variant, dev, model, para, mx, mh, frac, lo, hi, perf, hib))
    return pd.DataFrame(rows, columns=cols)
