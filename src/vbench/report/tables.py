"""The report's tables as rows for the template, and the sanity flags shown next to numbers.

A flag sits next to the number it concerns, not in a list at the bottom:

* ``host``: a guest measured above the host-native baseline (a guest cannot beat the host it runs
  on: the baseline is not the same job, or a cache answered);
* ``noisy``: a coefficient of variation above the noise limit;
* ``reps``: failed or missing repetitions (fewer samples than the run planned, or failures);
* ``driver``: the device under test was not verified (the stored check failed or is absent).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from vbench import devices
from vbench.core import fmt
from vbench.core.metrics import base_metric, metric_label
from vbench.report.data import Data, metric_order
from vbench.report.figures import perf_ci
from vbench.report.forest import advantage
from vbench.report.load import RunInfo

# Metrics of the headline table and figure: the telling ones per device kind (all are one click
# away), with the CPU cost per unit of work next to the speed.
HEADLINE_METRICS = ("guest_cpu_per_io", "host_cpu_per_io", "guest_cpu_per_gbit",
                    "host_cpu_per_gbit") + \
    devices.headline_metrics()

FLAG_TEXT = {
    "above-host": ("above host", "measured above the host-native baseline: the baseline is not the same "
                           "job, or a cache answered"),
    "noisy": ("noisy", "coefficient of variation above the noise limit"),
    "reps": ("repetitions", "failed or missing repetitions"),
    "driver": ("driver", "the device under test was not verified in the guest"),
}


def headline(ratios):
    return ratios[ratios["metric"].map(base_metric).isin(HEADLINE_METRICS)]


class Flags:
    """Sanity flags per (run, scenario, workload, metric, variant); ``None`` for any metric."""

    def __init__(self, data: Data, runs: list[RunInfo], noisy_cv: float):
        self.by_key: dict[tuple, list[dict]] = defaultdict(list)
        self.noisy_cv = noisy_cv
        self.counts: dict[str, int] = defaultdict(int)
        for x in data.host.itertuples(index=False):
            # speed only: a guest spending less CPU than the host's fio is no contradiction
            if x.performance > 1 and "cpu" not in x.metric:
                self._add((x.run_id, x.scenario, x.workload, x.metric, x.variant), "above-host",
                          f"{fmt.pct(x.performance)} of host-native")
        for x in data.summary.itertuples(index=False):
            if x.noisy:
                self._add((x.run_id, x.scenario, x.workload, x.metric, x.variant), "noisy",
                          f"CV {fmt.pct(x.cv)} > {fmt.pct(noisy_cv, digits=0)}")
        self._repetitions(data, runs)
        self._drivers(data, runs)

    def _add(self, key: tuple, kind: str, detail: str) -> None:
        short, long = FLAG_TEXT[kind]
        self.by_key[key].append({"kind": kind, "text": short, "title": f"{long}: {detail}"})
        self.counts[kind] += 1

    def _repetitions(self, data: Data, runs: list[RunInfo]) -> None:
        planned = {r.label: r.record.repetitions for r in runs}
        failed: dict[tuple, int] = defaultdict(int)
        for r in runs:
            for f in r.failures:
                failed[(r.label, f.variant, f.workload)] += 1
        for x in data.summary.itertuples(index=False):
            want = planned.get(x.run_id)
            nfail = failed.get((x.run_id, x.variant, x.workload), 0) + failed.get(
                (x.run_id, x.variant, "*"), 0)  # "*": the whole variant failed
            if (want and x.n < want) or nfail:
                detail = f"{x.n} of {want or '?'} repetitions" + (f", {nfail} failed" if nfail else "")
                self._add((x.run_id, x.scenario, x.workload, x.metric, x.variant), "reps", detail)

    def _drivers(self, data: Data, runs: list[RunInfo]) -> None:
        for r in runs:
            for vname, v in r.variants.items():
                if v.baseline or vname in data.baseline:
                    continue
                checks = [d for d in r.drivers() if d.variant == vname and d.under_test]
                bad = [d.check for d in checks if not d.check.ok]
                if checks and not bad:
                    continue
                detail = (f"expected {bad[0].expected or '?'}, found {bad[0].found or 'nothing'}"
                          if bad else "no stored verification")
                self._add((r.label, None, None, None, vname), "driver", detail)

    def get(self, run: str, scenario: str, workload: str, metric: str, variant: str) -> list[dict]:
        return (self.by_key.get((run, scenario, workload, metric, variant), [])
                + self.by_key.get((run, None, None, None, variant), []))

    def of_ratio(self, x) -> list[dict]:
        """The flags of both sides of a ratio, one per kind (its title names the variants)."""
        out: dict[str, dict] = {}
        for v in (x.variant, x.reference):
            for f in self.get(x.run_id, x.scenario, x.workload, x.metric, v):
                if f["kind"] in out:
                    out[f["kind"]]["title"] += f"; {v}: {f['title']}"
                else:
                    out[f["kind"]] = {**f, "title": f"{v}: {f['title']}"}
        return list(out.values())


def _sorted(frame, run_order: list[str], extra: list[str]):
    rank = {name: i for i, name in enumerate(run_order)}
    metrics = {m: i for i, m in enumerate(metric_order(frame["metric"].unique()))}
    f = frame.assign(_r=frame["run_id"].map(lambda x: rank.get(x, len(rank))),
                     _m=frame["metric"].map(metrics))
    return f.sort_values(["scenario", "workload", "_m"] + extra + ["_r"], kind="stable")


def ratio_rows(ratios, flags: Flags, run_order: list[str], unit) -> list[dict]:
    """Ratio table rows; with several runs the rows of one (workload, metric, pair) are adjacent
    and each later run shows the change of the advantage against the first run."""
    rows: list[dict] = []
    first: dict[tuple, Any] = {}
    for x in _sorted(ratios, run_order, ["variant", "reference"]).itertuples(index=False):
        adv, lo, hi = advantage(x.ratio, x.ci_low, x.ci_high, bool(x.higher_is_better))
        key = (x.scenario, x.workload, x.metric, x.variant, x.reference)
        change = None
        if key in first:
            change = adv / first[key] - 1 if first[key] and math.isfinite(first[key]) else math.nan
        else:
            first[key] = adv
        rows.append({
            "run": x.run_id, "scenario": x.scenario, "workload": x.workload,
            "metric": metric_label(x.metric), "metric_id": x.metric, "unit": unit(x.metric),
            "variant": x.variant, "reference": x.reference,
            "context": f"{x.accelerator} on {x.host}",
            "median": fmt.num(x.centre), "median_reference": fmt.num(x.centre_reference),
            "ratio": fmt.ratio(x.ratio), "ci": fmt.interval(x.ci_low, x.ci_high, fmt.ratio),
            "advantage": fmt.ratio(adv), "p": fmt.pvalue(x.p_value), "test": x.test,
            "n": f"{x.n}/{x.n_reference}", "verdict": x.verdict,
            "cls": {"better": "better", "worse": "worse"}.get(x.verdict, "ns"),
            "direction": "higher is better" if x.higher_is_better else "lower is better",
            "change": "" if change is None else fmt.change(change),
            "flags": flags.of_ratio(x),
        })
    return rows


def summary_rows(data: Data, flags: Flags, run_order: list[str]) -> list[dict]:
    rows: list[dict] = []
    first: dict[tuple, Any] = {}
    for x in _sorted(data.summary, run_order, ["variant"]).itertuples(index=False):
        key = (x.scenario, x.workload, x.metric, x.variant)
        base = first.setdefault(key, (x.run_id, x.median))
        change = "" if base[0] == x.run_id or not base[1] else fmt.change(x.median / base[1] - 1)
        rows.append({"run": x.run_id, "scenario": x.scenario, "workload": x.workload,
                     "metric": metric_label(x.metric), "variant": x.variant, "model": x.model,
                     "context": f"{x.accelerator} on {x.host}", "n": x.n,
                     "median": fmt.num(x.median), "ci": fmt.interval(x.ci_low, x.ci_high),
                     "mean": fmt.num(x.mean), "cv": fmt.pct(x.cv), "min": fmt.num(x.min),
                     "max": fmt.num(x.max), "unit": data.unit(x.metric), "noisy": bool(x.noisy),
                     "change": change,
                     "flags": flags.get(x.run_id, x.scenario, x.workload, x.metric, x.variant)})
    return rows


def host_rows(data: Data, flags: Flags, run_order: list[str]) -> list[dict]:
    rows = []
    for x in _sorted(data.host, run_order, ["variant"]).itertuples(index=False):
        lo, hi = perf_ci(x)
        rows.append({"run": x.run_id, "scenario": x.scenario, "workload": x.workload,
                     "metric": metric_label(x.metric), "unit": data.unit(x.metric),
                     "variant": x.variant, "median": fmt.num(x.centre),
                     "host_median": fmt.num(x.host_centre), "performance": fmt.pct(x.performance),
                     "ci": fmt.interval(lo, hi, fmt.pct), "over": bool(x.performance > 1),
                     "flags": [f for f in flags.get(x.run_id, x.scenario, x.workload, x.metric,
                                                    x.variant) if f["kind"] == "above-host"]})
    return rows
