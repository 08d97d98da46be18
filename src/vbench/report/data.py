"""The analysed numbers of a report, indexed the way tables and figures need them.

Besides the stored metrics, two are derived here from the same repetition's samples, because raw
CPU percentages mark the device that does more work as "worse" on CPU: guest CPU per I/O (fio's
user + system CPU over its IOPS) and guest CPU per Gbit (the guest iperf3's CPU over its
throughput). The host side (QEMU's CPU per I/O and per Gbit) is measured by the run itself.
"""

from __future__ import annotations

from typing import Iterable

from vbench.core.metrics import METRICS
from vbench.report.load import RunInfo
from vbench.report.palette import RUN_MARKERS, Palette

HOST_VARIANT = "host"


def is_baseline(variant: str, device: str) -> bool:
    return variant == HOST_VARIANT or device == HOST_VARIANT


def metric_order(metrics: Iterable[str]) -> list[str]:
    known = list(METRICS)
    return sorted(set(metrics), key=lambda m: (known.index(m) if m in known else len(known), m))


def direction_of(workload: str) -> tuple[str, str] | None:
    """("h2g" or "g2h", the name without it): "tcp-1-h2g" -> ("h2g", "tcp-1")."""
    import re

    m = re.search(r"(?<![A-Za-z0-9])(h2g|g2h)(?![A-Za-z0-9])", workload)
    if not m:
        return None
    base = (workload[:m.start()].rstrip("-_.") + "-" + workload[m.end():].lstrip("-_.")).strip("-")
    return m.group(1), base or workload


KEYS = ["run_id", "scenario", "variant", "workload", "repetition", "accelerator", "host"]


def _derive(df, need: set[str], metric: str, unit: str, per_row):
    """``df`` plus a ``metric`` row per repetition that has every metric of ``need``:
    ``per_row(wide)`` computes it from the table of those metrics (a column each, a row per
    repetition; NaN where it does not apply)."""
    import pandas as pd

    sub = df[df["metric"].isin(need)]
    wide = sub.pivot_table(index=KEYS, columns="metric", values="value", aggfunc="first")
    for m in need - set(wide.columns):
        wide[m] = float("nan")
    value = per_row(wide)
    value = value[value.notna() & (value >= 0) & (value != float("inf"))]
    if len(value) == 0:
        return df
    first = sub.drop_duplicates(KEYS).set_index(KEYS)[["device", "model", "paravirtual"]]
    rows = value.rename("value").to_frame().join(first).reset_index()
    rows["metric"] = metric
    rows["unit"] = unit
    out = pd.concat([df, rows[list(df.columns)]], ignore_index=True)
    out.attrs.update(df.attrs)
    return out


def with_cpu_per_io(df):
    """Add ``guest_cpu_per_io`` rows (us of guest CPU per I/O): (usr% + sys%) * 1e4 / IOPS of the
    same run, variant, workload and repetition."""
    def per_io(w):
        return ((w["guest_cpu_usr"] + w["guest_cpu_sys"]) * 1e4 / w["iops"]).where(w["iops"] > 0)
    need = {"guest_cpu_usr", "guest_cpu_sys", "iops"}
    if len(df) == 0 or not need <= set(df["metric"].unique()):
        return df
    return _derive(df, need, "guest_cpu_per_io", "us", per_io)


def with_cpu_per_gbit(df):
    """Add ``guest_cpu_per_gbit`` rows (CPU seconds in the guest per Gbit moved): the guest's
    iperf3 CPU % / 100 over the throughput in Gbit/s. The guest runs the iperf3 client, which
    receives host to guest (h2g, ``receiver_cpu``) and sends guest to host (g2h, ``sender_cpu``);
    workloads without a direction in their name get none."""
    import pandas as pd

    def per_gbit(w):
        side = pd.Series([(direction_of(wl) or ("",))[0]
                          for wl in w.index.get_level_values("workload")], index=w.index)
        cpu = w["receiver_cpu"].where(side == "h2g", w["sender_cpu"].where(side == "g2h"))
        return (cpu / 100 / (w["throughput"] / 1000)).where(w["throughput"] > 0)
    have = set(df["metric"].unique()) if len(df) else set()
    if "throughput" not in have or not {"sender_cpu", "receiver_cpu"} & have:
        return df
    return _derive(df, {"sender_cpu", "receiver_cpu", "throughput"}, "guest_cpu_per_gbit", "s/Gbit",
                   per_gbit)


class Data:
    """Summaries, ratios and host fractions of a report's samples, plus lookup tables."""

    def __init__(self, df, runs: list[RunInfo]):
        from vbench.stats import summary

        d = with_cpu_per_gbit(with_cpu_per_io(summary.prepare(df)))
        self.df = d
        # A "series" gets its own marker: a run, split further by context if one run mixes several.
        ctx_per_run = d.groupby("run_id")[["accelerator", "host"]].nunique().max(axis=1)
        split = bool((ctx_per_run > 1).any()) if len(d) else False
        d["series"] = (d["run_id"] + " (" + d["accelerator"] + ", " + d["host"] + ")") if split \
            else d["run_id"]
        order = {r.label: i for i, r in enumerate(runs)}
        self.series = sorted(d["series"].unique(), key=lambda s: (order.get(s.split(" (")[0], 99), s))
        self.marker = {s: RUN_MARKERS[i % len(RUN_MARKERS)] for i, s in enumerate(self.series)}
        self.multi_run = len(self.series) > 1
        self.summary = summary.summarize(d, by_run=True)
        self.summary["series"] = (self.summary["run_id"] + " (" + self.summary["accelerator"] + ", "
                                  + self.summary["host"] + ")") if split else self.summary["run_id"]
        from vbench.stats.summary import references_of

        self.references = references_of(r.record for r in runs)
        self.ratios = summary.ratios(d, by_run=True, references=self.references)
        self.host = summary.host_fractions(d, by_run=True)
        self.scenarios = sorted(d["scenario"].unique())
        self.multi_scenario = len(self.scenarios) > 1
        self.variants = self._variant_order(d, runs)
        first = d.drop_duplicates("variant").set_index("variant")
        self.palette = Palette([(v, bool(first.loc[v, "paravirtual"]),
                                 is_baseline(v, first.loc[v, "device"]), first.loc[v, "device"])
                                for v in self.variants])
        self.baseline = {v for v in self.variants if is_baseline(v, first.loc[v, "device"])}
        vals = d["value"].to_numpy(dtype=float)
        self.values = {key: vals[pos] for key, pos in d.groupby(
            ["scenario", "workload", "metric", "variant", "series"], sort=False).indices.items()}
        self.stats: dict[tuple, tuple] = {}
        for row in self.summary.itertuples(index=False):
            self.stats[(row.scenario, row.workload, row.metric, row.variant, row.series)] = (
                row.median, row.ci_low, row.ci_high)
        self.metrics = set(self.summary["metric"])

    @staticmethod
    def _variant_order(d, runs: list[RunInfo]) -> list[str]:
        """As the scenarios list them (run.json order), the host baseline last."""
        vorder: list[str] = []
        for r in runs:
            for v in r.variants:
                if v not in vorder:
                    vorder.append(v)
        first = d.drop_duplicates("variant").set_index("variant")
        return sorted(first.index, key=lambda v: (is_baseline(v, first.loc[v, "device"]),
                                                  vorder.index(v) if v in vorder else len(vorder), v))

    def facet_label(self, scenario: str, workload: str) -> str:
        return f"{scenario} / {workload}" if self.multi_scenario else workload

    def facets(self, metrics: Iterable[str]) -> list[tuple[str, str]]:
        s = self.summary[self.summary["metric"].isin(list(metrics))]
        return sorted({(a, b) for a, b in zip(s["scenario"], s["workload"])})

    def unit(self, metric: str) -> str:
        """The unit the samples of ``metric`` carry (else the known one)."""
        if not hasattr(self, "_units"):
            known = self.summary[~self.summary["unit"].isin(["", "unknown"])]
            self._units = dict(zip(known["metric"], known["unit"]))
        return self._units.get(metric) or (METRICS[metric].unit if metric in METRICS else "")

    def series_label(self, variant: str, series: str) -> str:
        return f"{variant} \u00b7 {series}" if self.multi_run else variant

    def run_entries(self) -> list[tuple[str, str, str]]:
        """Legend entries telling runs apart by marker (none for a one-run report)."""
        return [(s, "#ffffff", self.marker[s]) for s in self.series] if self.multi_run else []
