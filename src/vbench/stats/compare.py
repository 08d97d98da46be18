"""Comparing a new run with a base run: one verdict per (workload, metric, variant), and the gate.

Each row gets a verdict from :func:`vbench.stats.verdict.judge` semantics (regression, improvement,
unchanged, inconclusive, missing). Only the **gated family** can fail the comparison: the primary
metrics a scenario declares in ``gate:`` (default :data:`DEFAULT_GATE_METRICS` on every variant
but the host baseline), with duplicates dropped (bandwidth is IOPS x block size for a fio job). The
p-values are corrected for multiple testing within the gated family (Benjamini-Hochberg by
default, Holm available) and, separately, within the reported rest, so a long table of secondary
metrics neither dilutes the gate nor raises false alarms of its own.

The gate fails on a gated regression, and on a gated inconclusive row unless
``fail_inconclusive`` is False: "the data cannot rule out a change beyond the threshold" is not a
pass. Runs measured under different accelerators or on different hosts are refused unless
``allow_mixed`` (then each key is still compared one context against one context, never pooled).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
import numpy as np
import pandas as pd

from vbench.stats import inference as stats
from vbench.core.errors import UserError
from vbench.stats.summary import CONTEXT, _groups, contexts, prepare
from vbench.core.policy import VERDICTS
from vbench.stats.verdict import RowStats, decide, detectable_change, row_stats
from vbench.core.metrics import metric_unit
from vbench.core.policy import ALPHA, DEFAULT_THRESHOLD, DUPLICATES, HOST_VARIANT, SERIES_KEYS, default_gate_metrics, fails_gate

COMPARE_STATUSES = VERDICTS
CORRECTIONS = stats.CORRECTIONS

# The JSON's schema: 2 added unit, centre(_base/_new) and the 90 % interval (eq_low/eq_high).
SCHEMA_VERSION = 2

COLUMNS = [*SERIES_KEYS, "unit", "n_base", "n_new", "centre", "centre_base", "centre_new",
           "median_base", "median_new", "cv_base", "cv_new", "change", "ci_low", "ci_high",
           "eq_low", "eq_high", "outliers_base", "outliers_new",
           "p_value", "p_adjusted", "test", "scale", "threshold", "detectable",
           "higher_is_better", "gated", "status", "reason", "context_split"]


@dataclass(frozen=True)
class Gate:
    """Which rows are gated: ``metrics`` (None: the default gated metrics of the device kinds
    compared, :data:`vbench.core.policy.DEFAULT_GATE_METRICS`) on ``variants`` (None: all but the host
    baseline) of ``workloads`` (None: all)."""

    metrics: tuple[str, ...] | None = None
    variants: tuple[str, ...] | None = None
    workloads: tuple[str, ...] | None = None

    @classmethod
    def from_spec(cls, spec, kind: str | None = None) -> "Gate":
        """From a scenario's ``gate:`` (a :class:`vbench.scenario.schema.GateSpec`, a dict or None) and
        its device kind: metrics the spec does not name are the kind's defaults, whatever else
        the spec names."""
        get = (lambda k, d=None: None) if spec is None else (
            spec.get if isinstance(spec, dict) else (lambda k, d=None: getattr(spec, k, d)))
        metrics, variants, workloads = get("metrics"), get("variants"), get("workloads")
        gate = cls(tuple(metrics) if metrics else None, tuple(variants) if variants else None,
                   tuple(workloads) if workloads else None)
        return gate.resolved([kind]) if kind else gate

    def resolved(self, kinds) -> "Gate":
        """This gate with its default metrics filled in from the device kinds compared."""
        if self.metrics is not None:
            return self
        try:
            metrics = default_gate_metrics(kinds)
        except KeyError as exc:
            raise UserError(f"{exc.args[0]}: name the gated metrics (--gate, or the scenario's "
                            f"gate.metrics)") from None
        return Gate(metrics, self.variants, self.workloads)

    def covers(self, workload: str, metric: str, variant: str) -> bool:
        if self.metrics is None:
            raise ValueError("Gate.covers on a gate whose default metrics are not resolved")
        if metric not in self.metrics:
            return False
        if self.variants is None:
            if variant == HOST_VARIANT:
                return False
        elif variant not in self.variants:
            return False
        return self.workloads is None or workload in self.workloads


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
    gate: Gate = field(default_factory=Gate)
    fail_inconclusive: bool = True
    # reasons that fail the gate as a whole, whatever the rows say (fail closed: no gated row,
    # an incomplete run): one line each
    blockers: list[str] = field(default_factory=list)
    between_run_sd: float = 0.0   # run-to-run log sd in the intervals (0: within-run only)

    def _rows(self, status: str, gated: bool | None = None) -> pd.DataFrame:
        sel = self.table["status"] == status
        if gated is not None:
            sel &= self.table["gated"] == gated
        return self.table[sel].reset_index(drop=True)

    @property
    def regressions(self) -> pd.DataFrame:
        return self._rows("regression")

    @property
    def improvements(self) -> pd.DataFrame:
        return self._rows("improvement")

    @property
    def has_regressions(self) -> bool:
        return bool((self.table["status"] == "regression").any())

    @property
    def gate_regressions(self) -> pd.DataFrame:
        return self._rows("regression", gated=True)

    @property
    def gate_inconclusive(self) -> pd.DataFrame:
        return self._rows("inconclusive", gated=True)

    @property
    def gate_failing(self) -> pd.DataFrame:
        """The gated rows that fail the gate (:func:`vbench.core.policy.fails_gate`)."""
        t = self.table
        sel = t["gated"].astype(bool) & t["status"].map(
            lambda s: fails_gate(s, not self.fail_inconclusive)).astype(bool)
        return t[sel].reset_index(drop=True)

    @property
    def gate_failed(self) -> bool:
        return bool(self.blockers) or bool(len(self.gate_failing))

    def counts(self, gated: bool | None = None) -> dict[str, int]:
        t = self.table if gated is None else self.table[self.table["gated"] == gated]
        vc = t["status"].value_counts()
        return {s: int(vc.get(s, 0)) for s in COMPARE_STATUSES}

    def gate_message(self) -> str:
        """One line: whether the gate passed, and why not."""
        regs, inc = len(self.gate_regressions), len(self.gate_inconclusive)
        n = int(self.table["gated"].sum())
        miss = int(((self.table["status"] == "missing") & self.table["gated"].astype(bool)).sum())
        if not self.gate_failed:
            extra = f"; {inc} inconclusive allowed" if inc else ""
            return f"gate passed: {n} gated row{'s' if n != 1 else ''}, no regression{extra}"
        parts = list(self.blockers)
        if miss:
            parts.append(f"{miss} gated row{'s' if miss != 1 else ''} missing on one side (a "
                         f"truncated run, or different workloads/variants: narrow the gate to "
                         f"what both runs hold)")
        if regs:
            parts.append(f"{regs} regression{'s' if regs != 1 else ''}")
        if inc and self.fail_inconclusive:
            parts.append(f"{inc} inconclusive (the data cannot rule out a change beyond the "
                         f"threshold; more repetitions or --allow-inconclusive)")
        return f"gate failed on {n} gated rows: " + ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "kind": "vbench-compare", "schema_version": COMPARE_JSON_VERSION,
            "units": dict(COMPARE_JSON_UNITS), "alpha": self.alpha,
            "estimate": ("change = centre_new / centre_base - 1 (relative rows: centres are "
                         "geometric means) or centre_new - centre_base in the row's unit "
                         "(absolute rows: means); ci_low/ci_high: its 95% interval, unadjusted, "
                         "with p_value; eq_low/eq_high: the 90% interval of 'unchanged'"),
            "default_threshold": self.default_threshold, "correction": self.correction,
            "thresholds": dict(self.thresholds), "base_runs": list(self.base_runs),
            "between_run_sd": self.between_run_sd,
            "new_runs": list(self.new_runs),
            "base_contexts": [list(c) for c in self.base_contexts],
            "new_contexts": [list(c) for c in self.new_contexts], "notes": list(self.notes),
            "gate": {"metrics": list(self.gate.metrics or ()), "blockers": list(self.blockers),
                     "variants": list(self.gate.variants) if self.gate.variants else None,
                     "workloads": list(self.gate.workloads) if self.gate.workloads else None,
                     "fail_inconclusive": self.fail_inconclusive, "failed": self.gate_failed,
                     "message": self.gate_message(), "counts": self.counts(gated=True)},
            "counts": self.counts(),
            "rows": [_with_units({k: _jsonable(v) for k, v in row.items()})
                     for row in self.table.to_dict(orient="records")],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def to_junit(self) -> str:
        from vbench.stats.compare_text import junit

        return junit(self)

    def to_text(self) -> str:
        from vbench.stats.compare_text import text

        return text(self)


# `vbench compare --json`: version 1 added schema_version and the units (rows carry "unit", the
# metric's, and "change_unit": "fraction" for relative rows, the metric's unit for absolute ones);
# version 2 the centres the change is computed from and the 90% interval of "unchanged".
COMPARE_JSON_VERSION = SCHEMA_VERSION
COMPARE_JSON_UNITS = {
    "median_base": "the row's unit", "median_new": "the row's unit",
    "centre_base": "the row's unit", "centre_new": "the row's unit",
    "eq_low": "the row's change_unit", "eq_high": "the row's change_unit",
    "cv_base": "fraction", "cv_new": "fraction",
    "change": "the row's change_unit (centre_new vs centre_base: a fraction, 0.05 = +5 %, for "
              "relative rows; a difference in the metric's unit for absolute ones)",
    "ci_low": "the row's change_unit", "ci_high": "the row's change_unit",
    "threshold": "the row's change_unit", "detectable": "the row's change_unit",
    "alpha": "probability", "p_value": "probability", "p_adjusted": "probability",
}


def _with_units(row: dict) -> dict:
    from vbench.core.metrics import METRICS

    info = METRICS.get(row.get("metric", ""))
    unit = info.unit if info is not None else ""
    row["unit"] = unit
    row["change_unit"] = "fraction" if row.get("scale") != "absolute" else unit
    return row


def describe_row(row: dict) -> str:
    from vbench.stats.compare_text import describe_row as _describe

    return _describe(row)


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


def _check_arguments(thresholds: dict, default_threshold: float, alpha: float,
                     correction: str, abs_thresholds: dict) -> None:
    for name, t in [("default", default_threshold), *thresholds.items()]:
        if not (isinstance(t, (int, float)) and 0 < t < 1):
            raise UserError(f"threshold for {name} must be a fraction in (0, 1) like 0.05 "
                            f"(got {t!r})")
    for name, t in abs_thresholds.items():
        if not (isinstance(t, (int, float)) and 0 <= t < math.inf):
            raise UserError(f"absolute threshold for {name} must be a number >= 0 (got {t!r})")
    if not 0 < alpha < 1:
        raise UserError(f"alpha must be between 0 and 1 (got {alpha!r})")
    if correction not in CORRECTIONS:
        raise UserError(f"correction must be one of {', '.join(CORRECTIONS)} (got {correction!r})")


def _grouping(b: pd.DataFrame, n: pd.DataFrame, allow_mixed: bool
              ) -> tuple[list[str], bool, list[str]]:
    """(keys, compared context by context, notes); refuses mixed contexts unless allowed."""
    bctx, nctx = contexts(b), contexts(n)
    notes: list[str] = []
    bscn, nscn = sorted(set(b["scenario"])), sorted(set(n["scenario"]))
    if bscn != nscn and not allow_mixed:
        raise UserError(f"cannot compare runs of different scenarios (base: {', '.join(bscn)}; "
                        f"new: {', '.join(nscn)}); pass --allow-mixed to compare anyway")
    same = bctx == nctx
    if not same and not allow_mixed:
        raise UserError(f"cannot compare runs measured in different contexts (base: "
                        f"{_ctx_text(bctx)}; new: {_ctx_text(nctx)}): numbers from another "
                        f"accelerator or host are not comparable; compare like with like, or "
                        f"pass --allow-mixed to compare anyway")
    keys = ["workload", "metric", "variant"]
    if b["scenario"].nunique() > 1 or n["scenario"].nunique() > 1:
        keys = ["scenario"] + keys
    if same and len(bctx) > 1:
        notes.append(f"several contexts ({_ctx_text(bctx)}): compared context by context, "
                     f"never pooled")
        return keys + list(CONTEXT), True, notes
    if not same:
        for side, ctx in (("base", bctx), ("new", nctx)):
            if len(ctx) > 1:
                raise UserError(f"the {side} mixes contexts ({_ctx_text(ctx)}) and the other side "
                                f"differs; compare one accelerator/host at a time")
        notes.append(f"mixed contexts allowed: base {_ctx_text(bctx)} vs new {_ctx_text(nctx)}; "
                     f"absolute changes include the context difference")
    return keys, False, notes


def _cv(x: np.ndarray) -> float:
    if x.size < 2:
        return math.nan
    m = float(np.mean(x))
    s = float(np.std(x, ddof=1))
    return s / abs(m) if m != 0 else (0.0 if s == 0 else math.inf)


def _one(b: pd.DataFrame, n: pd.DataFrame, col: str) -> str:
    vals = sorted(set(b[col]) | set(n[col]))
    return vals[0] if len(vals) == 1 else "/".join(vals)


def _row(kd: dict, x: np.ndarray, y: np.ndarray, scen: str, thresholds: dict,
         default_threshold: float, abs_thresholds: dict, fill: dict,
         between_run_sd: float = 0.0) -> tuple[dict, RowStats]:
    """The table row of one key (verdict still empty) and its :class:`RowStats`."""
    metric = kd["metric"]
    rs = row_stats(x, y, metric=metric, absolute=abs_thresholds.get(metric),
                   threshold=float(thresholds.get(metric, default_threshold)),
                   between_run_sd=between_run_sd)
    row = {"scenario": scen, "workload": kd["workload"], "metric": metric,
           "variant": kd["variant"], "accelerator": kd.get("accelerator", fill["accelerator"]),
           "host": kd.get("host", fill["host"]), "unit": metric_unit(metric),
           "n_base": int(x.size), "n_new": int(y.size), "centre": rs.centre,
           "centre_base": rs.centre_base, "centre_new": rs.centre_new,
           "median_base": float(np.median(x)) if x.size else math.nan,
           "median_new": float(np.median(y)) if y.size else math.nan,
           "cv_base": _cv(x), "cv_new": _cv(y), "change": rs.change, "ci_low": rs.low,
           "ci_high": rs.high, "eq_low": rs.eq_low, "eq_high": rs.eq_high,
           "outliers_base": rs.outliers_base, "outliers_new": rs.outliers_new, "p_value": rs.p_value, "p_adjusted": math.nan, "test": rs.test,
           "scale": rs.scale, "threshold": rs.threshold, "detectable": math.nan,
           "higher_is_better": rs.higher_is_better, "gated": False, "status": "",
           "reason": _outlier_note(rs),
           "context_split": fill["split"]}
    return row, rs


def _outlier_note(rs: RowStats) -> str:
    if not (rs.outliers_base or rs.outliers_new):
        return ""
    return (f"outlying repetitions set aside (stalls, vbench.stats.inference.outliers): {rs.outliers_base} "
            f"base, {rs.outliers_new} new; ")


def _series(r: dict, metric: str | None = None) -> tuple:
    """The row's series (policy.SERIES_KEYS), with another metric when given."""
    return tuple(metric if k == "metric" and metric else r[k] for k in SERIES_KEYS)


def _mark_gated(rows: list[dict], gate: Gate) -> None:
    """Set ``gated`` per row, dropping duplicates (bw when iops of the same row is gated)."""
    index = {_series(r) for r in rows if gate.covers(r["workload"], r["metric"], r["variant"])}
    for r in rows:
        if _series(r) not in index:
            continue
        dup = DUPLICATES.get(r["metric"])
        if dup and _series(r, metric=dup) in index:
            r["reason"] = f"not gated: duplicates {dup} (bandwidth = IOPS x block size); "
            continue
        r["gated"] = True


def _judge_family(rows: list[dict], rstats: list, alpha: float, correction: str) -> None:
    """Correct p-values within the gated family and within the rest; set verdicts."""
    for gated in (True, False):
        idx = [i for i, r in enumerate(rows) if r["gated"] == gated]
        adjusted = stats.adjust_p([rows[i]["p_value"] for i in idx], correction)
        m = sum(1 for p in adjusted if math.isfinite(p))
        for i, padj in zip(idx, adjusted):
            row = rows[i]
            row["p_adjusted"] = padj
            row["status"], why = decide(rstats[i], padj, alpha)
            row["reason"] += why
            per_row = alpha if correction == "none" else alpha / max(1, m)
            row["detectable"] = detectable_change(rstats[i], per_row)


def compare(base_df: pd.DataFrame, new_df: pd.DataFrame, thresholds: dict[str, float] | None = None,
            default_threshold: float = DEFAULT_THRESHOLD, alpha: float = ALPHA,
            allow_mixed: bool = False, correction: str = "bh", gate: Gate | None = None,
            abs_thresholds: dict[str, float] | None = None, fail_inconclusive: bool = True,
            blockers_in: list[str] | None = None, between_run_sd: float = 0.0,
            **_ignored) -> CompareResult:
    """Compare a new run (or runs) against a base per (workload, metric, variant).

    ``thresholds``: relative per metric (0.05 = 5 %), else ``default_threshold``;
    ``abs_thresholds``: absolute per metric in its unit (default: the metric's declared one, e.g.
    loss 1 percentage point). Verdicts: see :mod:`vbench.stats.verdict`; the gate: see the module
    docstring. Raises UserError for bad arguments, empty sides and mixed contexts.
    """
    thresholds, abs_thresholds = dict(thresholds or {}), dict(abs_thresholds or {})
    _check_arguments(thresholds, default_threshold, alpha, correction, abs_thresholds)
    gate = gate or Gate()
    b, n = prepare(base_df), prepare(new_df)
    for side, d in (("base", b), ("new run", n)):
        if len(d) == 0:
            raise UserError(f"the {side} has no samples to compare; check the run directory")
    keys, split, notes = _grouping(b, n, allow_mixed)
    gate = gate.resolved(set(b["device"]) | set(n["device"]))
    bgroups, ngroups = dict(_groups(b, keys)), dict(_groups(n, keys))
    bvals, nvals = b["value"].to_numpy(dtype=float), n["value"].to_numpy(dtype=float)
    bscen, nscen = b["scenario"].to_numpy(), n["scenario"].to_numpy()
    fill = {"accelerator": _one(b, n, "accelerator"), "host": _one(b, n, "host"), "split": split}
    rows, rstats = [], []
    for key in sorted(set(bgroups) | set(ngroups), key=lambda k: tuple(str(x) for x in k)):
        kd = dict(zip(keys, key))
        x = bvals[bgroups[key]] if key in bgroups else np.array([])
        y = nvals[ngroups[key]] if key in ngroups else np.array([])
        scen = kd.get("scenario") or (str(nscen[ngroups[key][0]]) if key in ngroups
                                      else str(bscen[bgroups[key][0]]))
        row, rs = _row(kd, x, y, scen, thresholds, default_threshold, abs_thresholds, fill,
                       between_run_sd)
        rows.append(row)
        rstats.append(rs)
    _mark_gated(rows, gate)
    _judge_family(rows, rstats, alpha, correction)
    blockers = [] if any(r["gated"] for r in rows) else [
        f"no gated rows: gate metrics {', '.join(gate.metrics or ())} match nothing in these "
        f"runs, so the gate would check nothing"]
    return CompareResult(blockers=blockers + list(blockers_in or ()),
                         between_run_sd=between_run_sd, table=pd.DataFrame(rows, columns=COLUMNS), alpha=alpha,
                         default_threshold=default_threshold, correction=correction,
                         thresholds=thresholds, base_runs=sorted(b["run_id"].unique().tolist()),
                         new_runs=sorted(n["run_id"].unique().tolist()),
                         base_contexts=contexts(b), new_contexts=contexts(n), notes=notes,
                         gate=gate, fail_inconclusive=fail_inconclusive)

