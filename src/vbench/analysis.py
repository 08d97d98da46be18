"""Statistics on the tidy sample table: summaries, virtio/emulated ratios, run comparison, history.

This module owns the numbers a report or a nightly check shows; it does no I/O (callers load the
samples with :func:`vbench.store.load_samples` and write what comes back).

Choices worth knowing (and why):

* **Median, not mean.** Benchmarks have one-sided outliers (a slow first run, a host hiccup); every
  comparison here is a ratio or a change of *medians*.
* **Bootstrap confidence intervals** (percentile method, ``N_BOOT`` = 2000 resamples, fixed seed):
  a result is reproducible bit for bit. The median of a resample only depends on which *order
  positions* were drawn, so the resampled positions are drawn once per sample size (cached) and
  applied to any sorted sample -- identical to the textbook bootstrap, and ~200x faster, which keeps
  a 100,000-sample report fast. The numerator and denominator of a ratio use independent streams.
* **Significance test: Mann-Whitney U** (scipy, two-sided; exact for small samples without
  ties). With tiny samples no rank or permutation test can reach the usual alpha: with 3 vs 3
  repetitions there are only 20 ways to split the values, so the smallest two-sided p-value is
  2/20 = 0.1 (a permutation test on the ratio of medians is even coarser: with 5 vs 5 it cannot
  go below 0.048). When the smallest attainable p-value is above the level needed we fall back to
  Student's t-test on the logarithms of the values (on the raw values when some are <= 0), which
  assumes log-normal noise of similar relative spread on both sides -- the usual shape of
  repeated benchmark runs on one host. The ``test`` column says which test produced each p-value:
  ``mwu``, ``t-log`` or ``t``.
* **Never pool contexts.** Numbers measured under different accelerators (KVM vs TCG) or on
  different hosts are never averaged together: ``accelerator`` and ``host`` are always part of the
  grouping key, and the ``mixed_contexts`` column says when the input held more than one context.
  :func:`compare` refuses mixed contexts unless asked (``allow_mixed=True``).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import UserError
from .fmt import change as _pct
from .fmt import sig as _num
from .model import SAMPLE_COLUMNS, higher_is_better

NOISY_CV = 0.10          # coefficient of variation above which a group is flagged noisy
N_BOOT = 2000            # bootstrap resamples
CONFIDENCE = 0.95
SEED = 20261126

CONTEXT = ("accelerator", "host")
SUMMARY_KEYS = ("scenario", "workload", "metric", "variant", "accelerator", "host")
HOST_VARIANT = "host"

COMPARE_STATUSES = ("regressed", "improved", "unchanged", "noisy", "insufficient", "missing")
CORRECTIONS = ("bh", "holm", "none")


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


# ---- bootstrap and tests -----------------------------------------------------------------------

@lru_cache(maxsize=512)
def _boot_positions(n: int, n_boot: int, seed: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Order positions (lower, upper middle) of the median of ``n_boot`` resamples of size ``n``.

    Resampling a sorted sample ``xs`` with replacement and taking the median equals
    ``(xs[lo] + xs[hi]) / 2`` with these positions, so they are drawn once per (n, stream).
    """
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


def _interval(dist: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
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


def ratio_ci(a: np.ndarray, b: np.ndarray, n_boot: int = N_BOOT, seed: int = SEED,
             confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Bootstrap CI of median(a) / median(b), a and b resampled independently."""
    ba = boot_medians(a, n_boot, seed, stream=1)
    bb = boot_medians(b, n_boot, seed, stream=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _interval(ba / bb, confidence)


def min_attainable_p(na: int, nb: int) -> float:
    """Smallest two-sided p-value the exact Mann-Whitney U test can give with these sizes.

    Only the most extreme split and its mirror image (all of a above all of b, or below) reach it:
    2 / C(na + nb, na). 3 vs 3 gives 0.1, 4 vs 4 0.029, 5 vs 5 0.0079.
    """
    return min(1.0, 2.0 / math.comb(na + nb, na))


def significance(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> tuple[float, str]:
    """Two-sided p-value for "a and b come from the same distribution" and the test used.

    Mann-Whitney U (scipy; exact for small samples without ties) when it can reach ``alpha`` --
    the level the caller needs a single test to be able to reach -- else Student's t-test on log
    values (see the module docstring). Fewer than 2 values on a side: NaN.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    na, nb = a.size, b.size
    if na < 2 or nb < 2:
        return (math.nan, "none")
    if min_attainable_p(na, nb) > alpha:
        return _t_test(a, b)
    if np.all(a == a[0]) and np.all(b == a[0]):
        return (1.0, "mwu")
    z = np.concatenate([a, b])
    if na > 8 and nb > 8 or np.unique(z).size < z.size:
        return (_mwu_asymptotic(a, b), "mwu")
    from scipy import stats

    return (float(stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue), "mwu")


def _mwu_asymptotic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value, normal approximation with tie and continuity correction.

    The same numbers as ``scipy.stats.mannwhitneyu(method="asymptotic")`` (which scipy's "auto"
    uses for samples above 8 or with ties), without its per-call overhead: a report makes
    thousands of these tests.
    """
    na, nb = a.size, b.size
    n = na + nb
    z = np.concatenate([a, b])
    order = np.argsort(z, kind="mergesort")
    zs = z[order]
    # average ranks of tied values
    starts = np.flatnonzero(np.r_[True, zs[1:] != zs[:-1]])
    counts = np.diff(np.r_[starts, n])
    avg = starts + (counts + 1) / 2.0
    ranks = np.empty(n)
    ranks[order] = np.repeat(avg, counts)
    u1 = float(ranks[:na].sum()) - na * (na + 1) / 2.0
    mu = na * nb / 2.0
    tie = float((counts ** 3 - counts).sum())
    var = na * nb / 12.0 * ((n + 1) - tie / (n * (n - 1)))
    if var <= 0:
        return 1.0
    u = max(u1, na * nb - u1)
    zval = (u - mu - 0.5) / math.sqrt(var)
    return float(min(1.0, math.erfc(zval / math.sqrt(2.0))))


def _t_test(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    """Student's two-sample t-test on log values (pooled variance: 2(n-1) degrees of freedom).

    Pooled rather than Welch: with 3 vs 3 values Welch's test falls to ~2 degrees of freedom and
    cannot see even a 2x change after a multiple-testing correction; repetitions of one benchmark
    on one host have similar relative spread, which is what pooling on the log scale assumes.
    """
    from scipy import stats

    name = "t-log"
    if np.all(a > 0) and np.all(b > 0):
        a, b = np.log(a), np.log(b)
    else:
        name = "t"
    va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
    if va == 0 and vb == 0:
        return (1.0 if np.mean(a) == np.mean(b) else 0.0, name)
    with warnings.catch_warnings():
        # Nearly identical samples make scipy warn about precision; the p-value is still right
        # (close to 1), and a warning on stderr in the middle of a run's output helps nobody.
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=True).pvalue)
    return (p, name)


# ---- summaries ----------------------------------------------------------------------------------

def summarize(df: pd.DataFrame, noisy_cv: float = NOISY_CV, by_run: bool = False,
              n_boot: int = N_BOOT, seed: int = SEED) -> pd.DataFrame:
    """One row per (scenario, workload, metric, variant, accelerator, host[, run_id]).

    Columns: the keys, device, model, paravirtual, unit, n, median, mean, std, cv, min, max,
    ci_low/ci_high (bootstrap CI of the median), noisy (cv > ``noisy_cv``), higher_is_better,
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
        lo, hi = _interval(boot_medians(x, n_boot, seed)) if n > 1 else (med, med)
        metric = key[keys.index("metric")]
        i0 = pos[0]
        rows.append((*key, device[i0], model[i0], bool(para[i0]), unit[i0], n, med, mean, std, cv,
                     float(np.min(x)), float(np.max(x)), lo, hi, bool(cv > noisy_cv),
                     higher_is_better(metric), mixed))
    return pd.DataFrame(rows, columns=cols)


def _is_baseline(variant: str, device: str) -> bool:
    return variant == HOST_VARIANT or device == HOST_VARIANT


def ratios(df: pd.DataFrame, reference: str | Iterable[str] | None = None, by_run: bool = False,
           alpha: float = 0.05, n_boot: int = N_BOOT, seed: int = SEED) -> pd.DataFrame:
    """Paravirtual vs emulated: ratio of medians (virtio / emulated) with CI and significance.

    For each (scenario, workload, metric, accelerator, host[, run_id]), every paravirtual variant is
    set against every emulated variant of the same device kind (``reference``: only these emulated
    variant names). ``better`` is True when the ratio points the good way for the metric (above 1
    for IOPS, below 1 for latency); ``verdict`` is better/worse when also significant at ``alpha``,
    otherwise "n.s." ("insufficient" with fewer than 2 samples a side, "undefined" when the
    emulated median is 0). ``alpha`` applies per row: these ratios describe, they do not alarm.
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
        for pv, dev, pmodel, is_pv, x in by_variant:
            if not is_pv:
                continue
            for ref, rdev, rmodel, r_pv, y in by_variant:
                if r_pv or rdev != dev or (refs is not None and ref not in refs):
                    continue
                mx, my = float(np.median(x)), float(np.median(y))
                ratio = mx / my if my != 0 else math.nan
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
            frac = mx / mh if mh != 0 else math.nan
            lo, hi = ratio_ci(x, h, n_boot, seed)
            perf = frac if hib else (1.0 / frac if frac else math.nan)
            rows.append((*key, accel, variant, dev, model, para, mx, mh, frac, lo, hi, perf, hib))
    return pd.DataFrame(rows, columns=cols)


# ---- comparing two runs ------------------------------------------------------------------------

@dataclass
class CompareResult:
    """Outcome of :func:`compare`: one row per (workload, metric, variant[, context])."""

    table: pd.DataFrame
    alpha: float
    default_threshold: float
    correction: str = "bh"
    thresholds: dict[str, float] = field(default_factory=dict)
    base_runs: list[str] = field(default_factory=list)
    new_runs: list[str] = field(default_factory=list)
    base_contexts: list[tuple[str, str]] = field(default_factory=list)
    new_contexts: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "regressed"].reset_index(drop=True)

    @property
    def improvements(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "improved"].reset_index(drop=True)

    @property
    def has_regressions(self) -> bool:
        return bool((self.table["status"] == "regressed").any())

    def counts(self) -> dict[str, int]:
        vc = self.table["status"].value_counts()
        return {s: int(vc.get(s, 0)) for s in COMPARE_STATUSES}

    def to_dict(self) -> dict:
        return {
            "kind": "vbench-compare",
            "alpha": self.alpha,
            "default_threshold": self.default_threshold,
            "correction": self.correction,
            "thresholds": dict(self.thresholds),
            "base_runs": list(self.base_runs),
            "new_runs": list(self.new_runs),
            "base_contexts": [list(c) for c in self.base_contexts],
            "new_contexts": [list(c) for c in self.new_contexts],
            "notes": list(self.notes),
            "counts": self.counts(),
            "rows": [{k: _jsonable(v) for k, v in row.items()}
                     for row in self.table.to_dict(orient="records")],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def to_junit(self) -> str:
        """JUnit XML: one testcase per (workload, variant, metric); a failure per regression."""
        import xml.etree.ElementTree as ET

        counts = self.counts()
        skipped = counts["insufficient"] + counts["missing"]
        suite = ET.Element("testsuite", name="vbench.compare", tests=str(len(self.table)),
                           failures=str(counts["regressed"]), errors="0", skipped=str(skipped))
        props = ET.SubElement(suite, "properties")
        for name, value in (("base_runs", ",".join(self.base_runs)),
                            ("new_runs", ",".join(self.new_runs)),
                            ("alpha", str(self.alpha)), ("correction", self.correction),
                            ("default_threshold", str(self.default_threshold))):
            ET.SubElement(props, "property", name=name, value=_xml_safe(value))
        for row in self.table.to_dict(orient="records"):
            classname = ".".join(_xml_safe(str(row[k])) for k in ("scenario", "workload", "variant"))
            if "accelerator" in row and row.get("context_split"):
                classname += f"[{_xml_safe(str(row['accelerator']))}@{_xml_safe(str(row['host']))}]"
            case = ET.SubElement(suite, "testcase", classname=classname,
                                 name=_xml_safe(str(row["metric"])), time="0")
            text = _xml_safe(describe_row(row))
            if row["status"] == "regressed":
                fail = ET.SubElement(case, "failure", message=text, type="regression")
                fail.text = text
            elif row["status"] in ("insufficient", "missing"):
                ET.SubElement(case, "skipped", message=text)
            else:
                out = ET.SubElement(case, "system-out")
                out.text = text
        return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"

    def to_text(self) -> str:
        """A plain-text table for the terminal, regressions first."""
        order = {s: i for i, s in enumerate(COMPARE_STATUSES)}
        t = self.table.copy()
        t["_o"] = t["status"].map(order)
        t = t.sort_values(["_o", "workload", "metric", "variant"], kind="stable")
        header = ("status", "workload", "variant", "metric", "base", "new", "change", "95% CI", "p",
                  "p adj")
        lines = [header]
        for row in t.to_dict(orient="records"):
            lines.append((row["status"], str(row["workload"]), str(row["variant"]), str(row["metric"]),
                          _num(row["median_base"]), _num(row["median_new"]),
                          _pct(row["change"]), f"[{_pct(row['ci_low'])}, {_pct(row['ci_high'])}]",
                          _num(row["p_value"], 3), _num(row["p_adjusted"], 3)))
        widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
        out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines]
        c = self.counts()
        out.append("")
        out.append((", ".join(f"{v} {k}" for k, v in c.items() if v) or "nothing to compare")
                   + f" (alpha {self.alpha}, p-values adjusted: {self.correction})")
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)


def describe_row(row: dict) -> str:
    return (f"{row['status']}: {row['metric']} of {row['workload']} on {row['variant']} "
            f"{_num(row['median_base'])} -> {_num(row['median_new'])} ({_pct(row['change'])}, "
            f"95% CI [{_pct(row['ci_low'])}, {_pct(row['ci_high'])}], p={_num(row['p_value'], 3)}, "
            f"adjusted p={_num(row.get('p_adjusted'), 3)}, threshold {_pct(row['threshold'], signed=False)})")


def _xml_safe(text: str) -> str:
    # XML 1.0 cannot carry most control characters, even escaped.
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def _jsonable(v):
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if v is None or v is pd.NA:
        return None
    return v


def _ctx_text(ctxs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{a} on {h}" for a, h in ctxs) or "none"


def compare(base_df: pd.DataFrame, new_df: pd.DataFrame, thresholds: dict[str, float] | None = None,
            default_threshold: float = 0.05, alpha: float = 0.05, allow_mixed: bool = False,
            correction: str = "bh", noisy_cv: float = NOISY_CV, n_boot: int = N_BOOT,
            seed: int = SEED) -> CompareResult:
    """Compare a new run (or runs) against a base per (workload, metric, variant).

    ``change`` = median(new) / median(base) - 1 with a bootstrap CI and a p-value (see
    :func:`significance`). Status:

    * ``regressed``: significant (p < alpha) AND worse than the metric's threshold (relative, e.g.
      0.05 = 5%; worse = lower for higher-is-better metrics, higher for latency-like ones);
    * ``improved``: the same, the good way;
    * ``noisy``: neither, and one side's coefficient of variation is above ``noisy_cv`` -- the run
      cannot show a change of the threshold's size, so "unchanged" would claim too much;
    * ``unchanged``: neither (a significant change within the threshold also counts as unchanged);
    * ``insufficient``: fewer than 2 samples on one side; ``missing``: only on one side.

    **Many metrics, one verdict.** A compare tests every (workload, metric, variant) at once, often
    60+ rows; at a per-row alpha of 0.05 an A/A comparison would flag about one row in twenty as a
    change, i.e. a false alarm most nights. ``correction`` (default ``"bh"``) therefore adjusts the
    p-values across the table before they are held against ``alpha``: ``"bh"`` Benjamini-Hochberg
    (controls the false discovery rate; for an A/A run the chance of any false alarm is <= alpha),
    ``"holm"`` Holm-Bonferroni (family-wise error), ``"none"`` the raw per-row p-value. The
    ``p_value`` column holds the raw value and ``p_adjusted`` the one used. Because a correction
    needs per-row p-values down to alpha / rows, the rank test is only used when it can reach that
    level (else Student's t-test on logs, see :func:`significance`).

    Raises UserError when base and new were measured under different accelerators or hosts, unless
    ``allow_mixed`` (then each key is still compared one context against one context, never pooled).
    """
    thresholds = dict(thresholds or {})
    for name, t in [("default", default_threshold), *thresholds.items()]:
        if not (isinstance(t, (int, float)) and 0 <= t < 10):
            raise UserError(f"threshold for {name} must be a fraction like 0.05 (got {t!r})")
    if not 0 < alpha < 1:
        raise UserError(f"alpha must be between 0 and 1 (got {alpha!r})")
    if correction not in CORRECTIONS:
        raise UserError(f"correction must be one of {', '.join(CORRECTIONS)} (got {correction!r})")
    b, n = prepare(base_df), prepare(new_df)
    if len(b) == 0:
        raise UserError("the base has no samples to compare; check the run directory")
    if len(n) == 0:
        raise UserError("the new run has no samples to compare; check the run directory")
    bctx, nctx = contexts(b), contexts(n)
    notes: list[str] = []
    same = bctx == nctx
    if not same and not allow_mixed:
        raise UserError(f"cannot compare runs measured in different contexts (base: {_ctx_text(bctx)}; "
                        f"new: {_ctx_text(nctx)}): numbers from another accelerator or host are not "
                        f"comparable; compare like with like, or pass --allow-mixed to compare anyway")
    keys = ["workload", "metric", "variant"]
    if b["scenario"].nunique() > 1 or n["scenario"].nunique() > 1:
        keys = ["scenario"] + keys
    split = False
    if same and len(bctx) > 1:
        keys += list(CONTEXT)  # like with like, context by context
        split = True
        notes.append(f"several contexts ({_ctx_text(bctx)}): compared context by context, never pooled")
    elif not same:
        for side, ctx in (("base", bctx), ("new", nctx)):
            if len(ctx) > 1:
                raise UserError(f"the {side} mixes contexts ({_ctx_text(ctx)}) and the other side "
                                f"differs; compare one accelerator/host at a time")
        notes.append(f"mixed contexts allowed: base {_ctx_text(bctx)} vs new {_ctx_text(nctx)}; "
                     f"absolute changes include the context difference")

    bgroups = dict(_groups(b, keys))
    ngroups = dict(_groups(n, keys))
    bvals, nvals = b["value"].to_numpy(dtype=float), n["value"].to_numpy(dtype=float)
    bscen, nscen = b["scenario"].to_numpy(), n["scenario"].to_numpy()
    all_keys = sorted(set(bgroups) | set(ngroups), key=lambda k: tuple(str(x) for x in k))
    testable = sum(1 for k in all_keys if k in bgroups and k in ngroups
                   and len(bgroups[k]) >= 2 and len(ngroups[k]) >= 2)
    # The level a single row's test must be able to reach: alpha, or alpha / rows when correcting.
    level = alpha if correction == "none" else alpha / max(1, testable)
    rows = []
    for key in all_keys:
        kd = dict(zip(keys, key))
        metric = kd["metric"]
        hib = higher_is_better(metric)
        thr = float(thresholds.get(metric, default_threshold))
        x = bvals[bgroups[key]] if key in bgroups else np.array([])
        y = nvals[ngroups[key]] if key in ngroups else np.array([])
        scen = kd.get("scenario") or (str(nscen[ngroups[key][0]]) if key in ngroups
                                      else str(bscen[bgroups[key][0]]))
        mb = float(np.median(x)) if x.size else math.nan
        mn = float(np.median(y)) if y.size else math.nan
        change = mn / mb - 1 if x.size and y.size and mb != 0 else math.nan
        lo = hi = p = math.nan
        test = "none"
        if x.size >= 2 and y.size >= 2:
            lo, hi = ratio_ci(y, x, n_boot, seed)
            lo, hi = lo - 1, hi - 1
            p, test = significance(y, x, level)
        rows.append({"scenario": scen, "workload": kd["workload"], "metric": metric,
                     "variant": kd["variant"],
                     "accelerator": kd.get("accelerator", _one(b, n, "accelerator")),
                     "host": kd.get("host", _one(b, n, "host")),
                     "n_base": int(x.size), "n_new": int(y.size), "median_base": mb, "median_new": mn,
                     "cv_base": _cv(x), "cv_new": _cv(y), "change": change, "ci_low": lo,
                     "ci_high": hi, "p_value": p, "p_adjusted": math.nan, "test": test,
                     "threshold": thr, "higher_is_better": hib, "status": "",
                     "context_split": split})
    adjusted = adjust_p([r["p_value"] for r in rows], correction)
    for row, padj in zip(rows, adjusted):
        row["p_adjusted"] = padj
        row["status"] = _status(row, alpha, noisy_cv)
    cols = ["scenario", "workload", "metric", "variant", "accelerator", "host", "n_base", "n_new",
            "median_base", "median_new", "cv_base", "cv_new", "change", "ci_low", "ci_high", "p_value",
            "p_adjusted", "test", "threshold", "higher_is_better", "status", "context_split"]
    table = pd.DataFrame(rows, columns=cols)
    return CompareResult(table=table, alpha=alpha, default_threshold=default_threshold,
                         correction=correction,
                         thresholds=thresholds, base_runs=sorted(b["run_id"].unique().tolist()),
                         new_runs=sorted(n["run_id"].unique().tolist()), base_contexts=bctx,
                         new_contexts=nctx, notes=notes)


def _status(row: dict, alpha: float, noisy_cv: float) -> str:
    if row["n_base"] == 0 or row["n_new"] == 0:
        return "missing"
    if row["n_base"] < 2 or row["n_new"] < 2:
        return "insufficient"
    change, p = row["change"], row["p_adjusted"]
    if np.isfinite(change) and np.isfinite(p) and p < alpha and abs(change) > row["threshold"]:
        worse = (change < 0) if row["higher_is_better"] else (change > 0)
        return "regressed" if worse else "improved"
    if max(row["cv_base"], row["cv_new"]) > noisy_cv:
        return "noisy"
    return "unchanged"


def adjust_p(pvalues: Sequence[float], method: str = "bh") -> list[float]:
    """Multiple-testing adjusted p-values (NaN stays NaN and does not count as a test).

    ``bh``: Benjamini-Hochberg step-up, ``holm``: Holm-Bonferroni step-down, ``none``: unchanged.
    """
    p = np.asarray(pvalues, dtype=float)
    out = p.copy()
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if method == "none" or m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    ps = p[order]
    ranks = np.arange(1, m + 1)
    if method == "bh":
        adj = np.minimum.accumulate((ps * m / ranks)[::-1])[::-1]
    elif method == "holm":
        adj = np.maximum.accumulate(ps * (m - ranks + 1))
    else:
        raise ValueError(f"unknown correction {method!r}")
    out[order] = np.minimum(adj, 1.0)
    return out.tolist()


def _cv(x: np.ndarray) -> float:
    if x.size < 2:
        return math.nan
    m = float(np.mean(x))
    s = float(np.std(x, ddof=1))
    return s / abs(m) if m != 0 else (0.0 if s == 0 else math.inf)


def _one(b: pd.DataFrame, n: pd.DataFrame, col: str) -> str:
    vals = sorted(set(b[col]) | set(n[col]))
    return vals[0] if len(vals) == 1 else "/".join(vals)


# ---- history ------------------------------------------------------------------------------------

def change_points(series: Sequence[float], min_rel_step: float = 0.05, min_size: int = 2,
                  noise_factor: float = 3.0) -> list[int]:
    """Positions where a new level starts in a series of per-run medians (oldest first).

    Binary segmentation with medians: a segment is split where the sum of absolute deviations from
    the two halves' medians is smallest, and the split is kept only when the step between the two
    medians is at least ``min_rel_step`` of the earlier level AND at least ``noise_factor`` times
    the point noise (estimated robustly from successive differences: 1.4826 * MAD / sqrt 2, which a
    level shift barely moves). Each side needs ``min_size`` points, so a single outlier run is not a
    change point (and a change in the very last run shows up one run later; ``vbench compare`` is
    the tool for the newest run). Non-finite values are ignored; the returned index ``i`` is a
    position in the given series: ``series[i]`` is the first value of the new level.
    """
    arr = np.asarray(list(series), dtype=float)
    where = np.flatnonzero(np.isfinite(arr))
    x = arr[where]
    if x.size < 2 * min_size:
        return []
    diffs = np.abs(np.diff(x))
    # Successive differences of a level series are noise (x sqrt 2) except at the few level shifts;
    # their median absolute value is a robust estimate of the point noise.
    sigma = 1.4826 * float(np.median(diffs)) / math.sqrt(2)
    found: list[int] = []

    def cost(seg: np.ndarray) -> float:
        return float(np.sum(np.abs(seg - np.median(seg))))

    def split(s: int, e: int) -> None:
        if e - s < 2 * min_size:
            return
        best_k, best_c = -1, math.inf
        for k in range(s + min_size, e - min_size + 1):
            c = cost(x[s:k]) + cost(x[k:e])
            if c < best_c - 1e-12:
                best_k, best_c = k, c
        if best_k < 0:
            return
        left, right = float(np.median(x[s:best_k])), float(np.median(x[best_k:e]))
        step = abs(right - left)
        rel_ok = step >= min_rel_step * abs(left) if left != 0 else step > 0
        if rel_ok and step > 0 and step >= noise_factor * sigma:
            found.append(best_k)
            split(s, best_k)
            split(best_k, e)

    split(0, x.size)
    return sorted(int(where[k]) for k in found)


def history_table(df: pd.DataFrame, run_order: Sequence[str] | None = None,
                  min_rel_step: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-run medians per (workload, metric, variant, accelerator, host) in run order, and the
    change points of each series.

    Returns (points, changes). ``points``: the series keys, run_id, position (0-based in
    ``run_order``; default: run ids sorted), median, n. ``changes``: the series keys, position,
    run_id, before (median level before), after, step (after / before - 1).
    """
    d = prepare(df)
    order = list(run_order) if run_order is not None else sorted(d["run_id"].unique())
    rank = {r: i for i, r in enumerate(order)}
    d = d[d["run_id"].isin(rank)]
    skeys = ["scenario", "workload", "metric", "variant", "accelerator", "host"]
    med = (d.groupby(skeys + ["run_id"], sort=False)["value"].agg(["median", "size"])
           .reset_index().rename(columns={"size": "n"}))
    med["position"] = med["run_id"].map(rank)
    med = med.sort_values(skeys + ["position"], kind="stable").reset_index(drop=True)
    changes = []
    for key, pos in _groups(med, skeys):
        s = med.iloc[pos]
        vals = s["median"].to_numpy(dtype=float)
        found = change_points(vals, min_rel_step=min_rel_step)
        bounds = [0] + found + [len(vals)]
        for j, i in enumerate(found, start=1):
            before = float(np.nanmedian(vals[bounds[j - 1]:i]))
            after = float(np.nanmedian(vals[i:bounds[j + 1]]))
            changes.append((*key, int(s["position"].iloc[i]), s["run_id"].iloc[i], before, after,
                            after / before - 1 if before else math.nan))
    ch = pd.DataFrame(changes, columns=skeys + ["position", "run_id", "before", "after", "step"])
    return med, ch
