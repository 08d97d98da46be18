#!/usr/bin/env python3
"""Benchmark: does the regression gate keep its promises at the shipped nightly settings?

Simulates log-normal noise (3 %, 5 % and 8 % coefficient of variation) through the real verdict
code (:mod:`vbench.verdict`, :mod:`vbench.stats`, the family logic of :mod:`vbench.compare`) and
prints, for the nightly scenario's repetitions, gate and threshold:

* the A/A false-alarm rate per compare: the gate fails (a gated regression, or a gated
  inconclusive row) although nothing changed (target <= 5 %);
* the smallest drop on one gated row found with 80 % power: as a ``regression``, and as a gate
  failure of any kind (target <= 10 % at 5 % CV);
* the coverage of the stated 95 % intervals at n = 3, 5, 10: the ratio interval of a compare row
  and the median interval of one group (target 93-97 %);
* the history benchmark: a planted 15 % step in 20 synthetic runs at 5 % noise found (>= 90 %),
  false steps on flat series (<= 1 % per series);
* the repetitions the nightly needs for a 10 % detectable drop at 5 % CV with its threshold.

Not a test (pytest collects only tests/)::

    PYTHONPATH=src python bench/bench_gate.py                  # scenarios/nightly-disk.yaml
    PYTHONPATH=src python bench/bench_gate.py --scenario scenarios/disk.yaml --quick

Exit status 1 when a target is missed at the shipped settings (5 % CV for power).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vbench import compare as C  # noqa: E402
from vbench import history as H  # noqa: E402
from vbench import stats as S  # noqa: E402
from vbench.verdict import interval_halfwidth, row_stats  # noqa: E402

FIO_METRICS = ("iops", "bw", "clat_mean", "clat_p50", "clat_p99", "clat_p99.9")
CVS = (0.03, 0.05, 0.08)


@dataclass
class Settings:
    """What the nightly compares: rows in the gated family, repetitions, threshold."""

    scenario: str
    gated: list[str]            # metric of each gated row
    reps_min: int
    reps_max: int
    target: float | None        # adaptive: stop when every gated interval is within +-target
    threshold: float
    alpha: float = 0.05
    correction: str = "bh"

    def describe(self) -> str:
        reps = (f"{self.reps_min}" if self.target is None else
                f"adaptive {self.reps_min}-{self.reps_max} until +-{self.target:.0%}")
        return (f"{self.scenario}: {len(self.gated)} gated rows ({', '.join(sorted(set(self.gated)))}), "
                f"repetitions {reps}, threshold {self.threshold:.0%}, alpha {self.alpha}, "
                f"correction {self.correction}")


def load_settings(path: Path, threshold: float | None) -> Settings:
    doc = yaml.safe_load(path.read_text())
    gate = C.Gate.from_spec(doc.get("gate"))
    variants = [v["name"] for v in doc["variants"]]
    if doc.get("host_baseline"):
        variants.append("host")
    workloads = [w["name"] for w in doc["workloads"]]
    produced = FIO_METRICS if doc.get("device") == "disk" else tuple(gate.metrics)
    metrics = [m for m in gate.metrics if m in produced
               and not (C.DUPLICATES.get(m) in gate.metrics)]
    rows = [m for v in variants for w in workloads for m in metrics if gate.covers(w, m, v)]
    reps = doc.get("repetitions", 3)
    if isinstance(reps, dict):
        lo, hi = int(reps.get("min", 3)), int(reps.get("max", 10))
        tgt = reps.get("target_ci")
        tgt = float(str(tgt).rstrip("%")) / (100 if str(tgt).endswith("%") else 1) if tgt else None
    else:
        lo = hi = int(reps)
        tgt = None
    thr = threshold or (doc.get("gate") or {}).get("threshold") or C.DEFAULT_THRESHOLD
    return Settings(path.name, rows, lo, hi, tgt, float(thr))


# ---- one simulated compare through the real code -------------------------------------------------

def _side(rng, m: int, cv: float, st: Settings, n: int | None = None) -> list[np.ndarray]:
    """One run's samples of the m gated rows (level 1000), adaptive when the settings say so."""
    if n is not None or st.target is None:
        k = n or st.reps_min
        return list(1000.0 * np.exp(rng.normal(0.0, cv, (m, k))))
    rows = [list(1000.0 * np.exp(rng.normal(0.0, cv, st.reps_min))) for _ in range(m)]
    while len(rows[0]) < st.reps_max and not all(
            interval_halfwidth(np.asarray(r)) <= st.target for r in rows):
        for r in rows:
            r.append(1000.0 * math.exp(rng.normal(0.0, cv)))
    return [np.asarray(r) for r in rows]


def simulate(rng, st: Settings, cv: float, drop: float = 0.0, n: int | None = None
             ) -> tuple[bool, str, int]:
    """(gate failed, verdict of row 0, gated regressions) of one compare; row 0 (an IOPS row)
    drops by ``drop``."""
    m = len(st.gated)
    base, new = _side(rng, m, cv, st, n), _side(rng, m, cv, st, n)
    new[0] = new[0] * (1.0 - drop)
    rows, rstats = [], []
    for metric, x, y in zip(["iops"] + st.gated[1:], base, new):
        rs = row_stats(x, y, metric="iops" if metric == "iops" else metric,
                       threshold=st.threshold)
        rstats.append(rs)
        rows.append({"gated": True, "p_value": rs.p_value, "reason": ""})
    C._judge_family(rows, rstats, st.alpha, st.correction)
    failed = any(r["status"] in ("regression", "inconclusive") for r in rows)
    return failed, rows[0]["status"], sum(r["status"] == "regression" for r in rows)


def false_alarms(st: Settings, cv: float, reps: int, n: int | None = None, seed: int = 1
                 ) -> tuple[float, float]:
    """(the gate fails, a gated regression alone) in A/A compares."""
    rng = np.random.default_rng([seed, int(cv * 1000), n or 0])
    failed = regressed = 0
    for _ in range(reps):
        fail, _verdict, regs = simulate(rng, st, cv, 0.0, n)
        failed += fail
        regressed += regs > 0
    return failed / reps, regressed / reps


_POWER: dict = {}


def power(st: Settings, cv: float, drop: float, reps: int, n: int | None, seed: int
          ) -> tuple[float, float]:
    """(P(row 0 is a regression), P(the gate fails on row 0)) at this drop."""
    key = (id(st), cv, round(drop, 6), reps, n, seed)
    if key in _POWER:
        return _POWER[key]
    rng = np.random.default_rng([seed, int(cv * 1000), n or 0])
    reg = fail = 0
    for _ in range(reps):
        _failed, verdict, _regs = simulate(rng, st, cv, drop, n)
        reg += verdict == "regression"
        fail += verdict in ("regression", "inconclusive")
    _POWER[key] = (reg / reps, fail / reps)
    return _POWER[key]


def smallest_drop(st: Settings, cv: float, reps: int, n: int | None = None,
                  which: int = 0) -> float:
    """Smallest drop found with 80 % power (bisection; common random numbers per step)."""
    lo, hi = 0.0, 0.6
    if power(st, cv, hi, reps, n, seed=7)[which] < 0.8:
        return math.inf
    for _ in range(7):
        mid = 0.5 * (lo + hi)
        if power(st, cv, mid, reps, n, seed=7)[which] >= 0.8:
            hi = mid
        else:
            lo = mid
    return hi


# ---- interval coverage ---------------------------------------------------------------------------

def coverage(cv: float, n: int, reps: int) -> tuple[float, float]:
    """(ratio interval of a compare row, median interval of one group) coverage."""
    rng = np.random.default_rng([3, n, int(cv * 1000)])
    ratio_hits = median_hits = 0
    for _ in range(reps):
        x = 1000.0 * np.exp(rng.normal(0.0, cv, n))
        y = 1000.0 * np.exp(rng.normal(0.0, cv, n))
        rs = row_stats(x, y, metric="iops")
        ratio_hits += rs.low <= 0.0 <= rs.high
        lo, hi, _m = S.median_interval(x)
        median_hits += lo <= 1000.0 <= hi
    return ratio_hits / reps, median_hits / reps


# ---- history -------------------------------------------------------------------------------------

def history_series(rng, n_runs: int, run_reps: int, cv: float, step: float, at: int,
                   drift: float) -> tuple[list[float], list[float]]:
    meds, variances = [], []
    for i in range(n_runs):
        level = 1000.0 * (1.0 - step if i >= at else 1.0) * math.exp(rng.normal(0.0, drift))
        _med, est, var, _lo, _hi = H.run_levels(level * np.exp(rng.normal(0.0, cv, run_reps)))
        meds.append(est)
        variances.append(var)
    return meds, variances


def history_rates(run_reps: int, cv: float, drift: float, reps: int) -> tuple[float, float]:
    """(planted 15 % step found within one run of its place, flat series with any step)."""
    rng = np.random.default_rng([11, run_reps, int(cv * 1000), int(drift * 1000)])
    found = false = 0
    for _ in range(reps):
        at = int(rng.integers(5, 16))
        meds, var = history_series(rng, 20, run_reps, cv, 0.15, at, drift)
        found += any(abs(c - at) <= 1 for c in H.change_points(meds, var))
        meds, var = history_series(rng, 20, run_reps, cv, 0.0, 0, drift)
        false += bool(H.change_points(meds, var))
    return found / reps, false / reps


# ---- output --------------------------------------------------------------------------------------

def pct(v: float) -> str:
    return "none <= 60%" if not math.isfinite(v) else f"{v * 100:.1f}%"


def gate_section(st: Settings, reps: int) -> bool:
    print(f"\n== gate at the shipped settings: {st.describe()}")
    print(f"{'CV':>4}  {'A/A gate fails':>14}  {'(regressions)':>13}  "
          f"{'drop found 80% (regression)':>28}  {'drop failing the gate 80%':>26}")
    ok = True
    for cv in CVS:
        fa, fa_reg = false_alarms(st, cv, reps)
        d_reg = smallest_drop(st, cv, reps // 4)
        d_fail = smallest_drop(st, cv, reps // 4, which=1)
        print(f"{cv:>4.0%}  {fa:>14.1%}  {fa_reg:>13.1%}  {pct(d_reg):>28}  {pct(d_fail):>26}")
        ok &= fa <= 0.05
        if cv == 0.05:
            ok &= d_reg <= 0.10
    print("targets: A/A gate fails <= 5% at every CV; drop <= 10% at 5% CV. (regressions): the A/A\n"
          "rate of gated regressions alone, i.e. with --allow-inconclusive")
    return ok


def coverage_section(reps: int) -> bool:
    print("\n== coverage of the stated 95% intervals (ratio of a compare row | median of a group)")
    print(f"{'CV':>4}  " + "  ".join(f"{'n=' + str(n):>15}" for n in (3, 5, 10)))
    ok = True
    for cv in CVS:
        cells = []
        for n in (3, 5, 10):
            r, m = coverage(cv, n, reps)
            ok &= 0.93 <= r <= 0.97 and 0.93 <= m <= 0.97
            cells.append(f"{r:.1%} | {m:.1%}")
        print(f"{cv:>4.0%}  " + "  ".join(f"{c:>15}" for c in cells))
    print("target: 93-97%")
    return ok


def history_section(reps: int) -> bool:
    print("\n== history: 20 runs, planted 15% step (found within one run of its place) and flat "
          "series (any step is false)")
    print(f"{'noise model':<52}  {'step found':>10}  {'false steps':>11}")
    ok = True
    for run_reps, cv, drift, label in (
            (3, 0.05, 0.0, "3 repetitions per run at 5% CV"),
            (3, 0.05, 0.02, "3 repetitions at 5% CV + 2% night-to-night drift"),
            (1, 0.05, 0.0, "one value per run at 5% noise (no run interval)")):
        found, false = history_rates(run_reps, cv, drift, reps)
        ok &= found >= 0.90 and false <= 0.01
        print(f"{label:<52}  {found:>10.1%}  {false:>11.1%}")
    print("targets: found >= 90%, false steps <= 1% per series")
    return ok


def needed_section(st: Settings, reps: int) -> None:
    print(f"\n== repetitions needed at 5% CV with {len(st.gated)} gated rows (fixed count, "
          f"no adaptive stop)")
    print(f"{'threshold':>9}  {'reps':>4}  {'A/A false alarms':>16}  {'drop found 80%':>14}")
    for thr in sorted({st.threshold, 0.05, 0.10, 0.12, 0.15}):
        fixed = Settings(st.scenario, st.gated, 3, 3, None, thr, st.alpha, st.correction)
        first = None
        for n in (3, 5, 8, 10, 12, 15, 20):
            fa = false_alarms(fixed, 0.05, reps, n=n)[0]
            d = smallest_drop(fixed, 0.05, reps // 2, n=n)
            if fa <= 0.05 and d <= 0.10:
                first = n
                print(f"{thr:>9.0%}  {n:>4}  {fa:>16.1%}  {pct(d):>14}  <- enough")
                break
            print(f"{thr:>9.0%}  {n:>4}  {fa:>16.1%}  {pct(d):>14}")
        if first is None:
            print(f"{thr:>9.0%}  none of 3-20 repetitions meets both targets")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "nightly-disk.yaml")
    ap.add_argument("--threshold", type=float, help="override the scenario's gate threshold")
    ap.add_argument("--quick", action="store_true", help="fewer simulations (rough figures)")
    args = ap.parse_args(argv)
    reps = 400 if args.quick else 2000
    t0 = time.monotonic()
    st = load_settings(args.scenario, args.threshold)
    ok = gate_section(st, reps)
    ok &= coverage_section(reps * 2)
    ok &= history_section(reps // 2)
    needed_section(st, reps // 2)
    print(f"\n{'all targets met' if ok else 'SOME TARGETS MISSED'} "
          f"({time.monotonic() - t0:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
