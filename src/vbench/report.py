"""Self-contained HTML reports of stored runs, and history pages of a scenario.

Everything comes from the results store: a report can be rebuilt at any time without a VM. Figures
are drawn with matplotlib's Agg canvas (no pyplot state, no display) and embedded as base64 PNG;
the page carries its CSS inline and a Content-Security-Policy that forbids every fetch except
``data:`` images, so it opens from ``file://`` offline and cannot run a script even if one slipped
into a scenario text. All text from scenarios, runs and guests goes through Jinja2 autoescaping.

pandas, numpy and matplotlib are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import base64
import datetime as _dt
import difflib
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from . import __version__, devices
from .errors import StoreError, UserError
from .fmt import num as fmt_num
from .fmt import pct as fmt_pct
from .fmt import pvalue as fmt_p
from .fmt import ratio as fmt_ratio
from .model import METRICS, higher_is_better, metric_label
from .store import atomic_write, find_runs, load_meta, load_samples

TEMPLATES = Path(__file__).with_name("templates")

# Metrics of the headline table: one or two telling ones per device kind (all are one click away).
HEADLINE_METRICS = devices.headline_metrics()
# Latency percentile families; fio jobs that both read and write prefix their metrics with
# "read_"/"write_" (read_clat_p99), which get their own figure.
_LAT_BASE = {"clat": ("clat_p50", "clat_p99", "clat_p99.9"), "rtt": ("rtt_p50", "rtt_p99")}
LATENCY_PERCENTILES = {prefix + fam: tuple(prefix + m for m in ms)
                       for prefix in ("", "read_", "write_") for fam, ms in _LAT_BASE.items()
                       if not (prefix and fam == "rtt")}
DIRECTION_PREFIXES = ("read_", "write_")
BALLOON_GUEST = ("guest_mem_before", "guest_mem_shrunk", "guest_mem_after")
BALLOON_HOST = ("host_rss_before", "host_rss_shrunk")
ENTROPY = ("hwrng_read_rate", "crng_init_time", "entropy_avail")
DIRECTION = re.compile(r"(?<![A-Za-z0-9])(h2g|g2h)(?![A-Za-z0-9])")
DIRECTION_LABEL = {"h2g": "host \u2192 guest", "g2h": "guest \u2192 host"}

PV_COLOURS = ("#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#4c72b0")
EMU_COLOURS = ("#ff7f0e", "#d62728", "#8c564b", "#e377c2", "#bcbd22")
RUN_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")
RUN_HATCHES = ("", "////", "....", "xxxx", "\\\\", "++", "oo")
HOST_COLOUR = "#7f7f7f"
DPI = 80


# ---- loading ------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    path: Path
    label: str
    meta: dict
    problems: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict:
        return _dict(self.meta.get("environment"))

    @property
    def accelerator(self) -> str:
        return str(self.env.get("accelerator") or "")


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list:
    return v if isinstance(v, list) else []


def _load_runs(run_paths: Iterable[Path], warnings: list[str]):
    """Run metadata and samples; each run's ``run_id`` column is set to a unique label."""
    import pandas as pd

    runs: list[RunInfo] = []
    frames = []
    seen: dict[str, int] = {}
    for raw in run_paths:
        path = Path(raw)
        if not path.is_dir():
            raise UserError(f"{path} is not a run directory; pass paths like results/<run id>")
        try:
            meta = load_meta(path)
        except StoreError as exc:
            raise UserError(f"cannot report on {path}: {exc}") from exc
        label = path.name
        if label in seen:
            seen[label] += 1
            label = f"{label} ({seen[label]})"
        else:
            seen[label] = 1
        info = RunInfo(path=path, label=label, meta=meta)
        df = load_samples(path, warn=warnings.append)
        if len(df):
            df["run_id"] = label
            frames.append(df)
        else:
            info.problems.append("no samples stored")
        runs.append(info)
    if not runs:
        raise UserError("no runs given; pass one or more run directories (results/<run id>)")
    df = pd.concat(frames, ignore_index=True) if frames else load_samples(runs[0].path)
    return runs, df


# ---- small helpers ------------------------------------------------------------------------------

def _mpl_text(s: Any) -> str:
    """Text safe for matplotlib: '$' would start mathtext (and can raise on odd input)."""
    return str(s).replace("\\", "\\\\").replace("$", r"\$")


def _metric_order(metrics: Iterable[str]) -> list[str]:
    known = list(METRICS)
    return sorted(set(metrics), key=lambda m: (known.index(m) if m in known else len(known), m))


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")
    return s[:80] or "x"


# ---- figures ------------------------------------------------------------------------------------

def _new_figure(nfacets: int, ncols: int = 3, w: float = 4.3, h: float = 3.1,
                legend: bool = False, sharex: bool = False):
    """A figure with a grid of ``nfacets`` panels and fixed margins (in inches).

    Fixed margins instead of tight_layout: the automatic layout measures every text and was a third
    of the report's time.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, nfacets))
    nrows = max(1, math.ceil(nfacets / ncols))
    top, bottom, left, right = 0.8, 0.95, 0.8, 0.25
    gap = 0.6 if sharex else 1.25  # room between rows for x tick labels (if any) and titles
    if legend:
        right += 1.9  # room for a figure legend right of the panels
    width = w * ncols + (right - 0.25)
    height = top + bottom + nrows * (h - 1.0) + (nrows - 1) * gap
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex="all" if sharex else "none")
    axes = grid.ravel().tolist()
    if sharex:
        # x tick labels only under the lowest panel of each column (cheaper, and less clutter)
        for i, ax in enumerate(axes[:nfacets]):
            ax.xaxis.set_tick_params(labelbottom=i + ncols >= nfacets)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, hspace=gap / (h - 1.0), wspace=0.32)
    from matplotlib.ticker import MaxNLocator

    for ax in axes[:nfacets]:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    for ax in axes[nfacets:]:
        ax.set_visible(False)
    return fig, axes[:nfacets]


def _title(ax, text: str, size: int = 10) -> None:
    # An explicit y turns off matplotlib's automatic title placement, which measures every tick
    # label of the panel (a fifth of the drawing time of a big report).
    ax.set_title(_mpl_text(text), fontsize=size, y=1.0, pad=5)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _Palette:
    """Stable styles: colour by variant kind (virtio blues/greens, emulated oranges/reds, the host
    baseline grey), hatch by run when several runs are side by side."""

    def __init__(self, variants: list[tuple[str, bool, bool]]):
        self.hatch: dict[str, str] = {}
        self.variant: dict[str, str] = {}
        pv = emu = 0
        for name, para, base in variants:
            if base:
                self.variant[name] = HOST_COLOUR
            elif para:
                self.variant[name] = PV_COLOURS[pv % len(PV_COLOURS)]
                pv += 1
            else:
                self.variant[name] = EMU_COLOURS[emu % len(EMU_COLOURS)]
                emu += 1

    def style(self, variant: str, series: str) -> tuple[str, str]:
        return self.variant.get(variant, HOST_COLOUR), self.hatch.get(series, "")


def _grouped_bars(ax, groups: list[str], hues: list, stats: dict, points: dict, style,
                  log: bool = False) -> None:
    """Bars of medians at x = group, one bar per hue, CI whiskers, repetition dots on top.

    ``stats[(group, hue)] = (median, ci_low, ci_high)``; ``points[(group, hue)] = values``;
    ``style(group, hue) -> (colour, hatch)``.
    """
    import numpy as np

    nh = max(1, len(hues))
    width = 0.8 / nh
    rng = np.random.default_rng(0)
    bars: dict[str, list] = {}  # hatch -> [(x, median, colour)]; one bar() call per hatch
    xs, meds, lo_err, hi_err, px, py = [], [], [], [], [], []
    for k, hue in enumerate(hues):
        for gi, group in enumerate(groups):
            st = stats.get((group, hue))
            if st is None:
                continue
            med, lo, hi = st
            x = gi - 0.4 + width * (k + 0.5)
            colour, hatch = style(group, hue)
            bars.setdefault(hatch or "", []).append((x, med, colour))
            xs.append(x)
            meds.append(med)
            lo_err.append(max(0.0, med - lo) if math.isfinite(lo) else 0.0)
            hi_err.append(max(0.0, hi - med) if math.isfinite(hi) else 0.0)
            vals = points.get((group, hue))
            if vals is not None and len(vals):
                px.append(x + rng.uniform(-width * 0.3, width * 0.3, len(vals)))
                py.append(np.asarray(vals, dtype=float))
    for hatch, items in bars.items():
        ax.bar([i[0] for i in items], [i[1] for i in items], width * 0.92,
               color=[i[2] for i in items], alpha=0.85, edgecolor="#333333", linewidth=0.5,
               hatch=hatch or None, zorder=2)
    if xs:
        ax.errorbar(xs, meds, yerr=[lo_err, hi_err], fmt="none", ecolor="#111111",
                    elinewidth=1.0, capsize=3, zorder=4)
    top = None
    if not log and meds:
        # One wild repetition (or its whisker) must not flatten every bar of the panel: beyond
        # 2.5x the tallest median the axis is cut, and cut-off repetitions are drawn as triangles
        # on the top edge.
        tallest = max(max(meds), 0.0)
        highest = max([m + e for m, e in zip(meds, hi_err)] +
                      [float(np.max(v)) for v in py if len(v)], default=tallest)
        if tallest > 0 and highest > 2.5 * tallest:
            top = 1.6 * tallest
    if px:
        xs_all, ys_all = np.concatenate(px), np.concatenate(py)
        if top is not None:
            off = ys_all > top
            ax.scatter(xs_all[off], np.full(int(off.sum()), top * 0.985), s=22, marker="^",
                       c="#d62728", linewidths=0, zorder=6, clip_on=False)
            xs_all, ys_all = xs_all[~off], ys_all[~off]
        ax.scatter(xs_all, ys_all, s=7, c="#000000", alpha=0.45, linewidths=0, zorder=5)
    if top is not None:
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=top)
    ax.set_xticks(range(len(groups)))
    rotate = len(groups) > 3 or max((len(g) for g in groups), default=0) > 14
    ax.set_xticklabels([_mpl_text(g) for g in groups], rotation=25 if rotate else 0,
                       ha="right" if rotate else "center", fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.tick_params(axis="y", labelsize=8)


def _legend(fig, entries: list[tuple[str, str, str]], title: str | None = None) -> None:
    """A figure legend right of the panels from (label, colour, hatch) entries."""
    from matplotlib.patches import Patch

    if not entries:
        return
    handles = [Patch(facecolor=c, edgecolor="#333333", hatch=h or None, label=_mpl_text(lbl),
                     alpha=0.85) for lbl, c, h in entries]
    fig.legend(handles=handles, loc="upper right", fontsize=8, title=title, title_fontsize=8,
               framealpha=0.9, borderaxespad=0.6)


@dataclass
class ReportFigure:
    id: str
    title: str
    src: str
    alt: str
    caption: str = ""


class _Data:
    """The analysed numbers of a report, indexed the way the figures need them."""

    def __init__(self, df, runs: list[RunInfo]):
        from . import analysis

        self.df = analysis.prepare(df)
        d = self.df
        # A "series" gets its own bar: a run, split further by context if one run mixes several.
        ctx_per_run = d.groupby("run_id")[["accelerator", "host"]].nunique().max(axis=1)
        split = bool((ctx_per_run > 1).any()) if len(d) else False
        d["series"] = (d["run_id"] + " (" + d["accelerator"] + ", " + d["host"] + ")") if split \
            else d["run_id"]
        order = {r.label: i for i, r in enumerate(runs)}
        self.series = sorted(d["series"].unique(), key=lambda s: (order.get(s.split(" (")[0], 99), s))
        self.multi_run = len(self.series) > 1
        self.summary = analysis.summarize(d, by_run=True)
        self.summary["series"] = (self.summary["run_id"] + " (" + self.summary["accelerator"] + ", "
                                  + self.summary["host"] + ")") if split else self.summary["run_id"]
        self.ratios = analysis.ratios(d, by_run=True)
        self.host = analysis.host_fractions(d, by_run=True)
        self.scenarios = sorted(d["scenario"].unique())
        self.multi_scenario = len(self.scenarios) > 1
        # variant order: as the scenarios list them (run.json order), the host baseline last
        vorder: list[str] = []
        for r in runs:
            for v in _dict(r.meta.get("variants")):
                if v not in vorder:
                    vorder.append(v)
        first = d.drop_duplicates("variant").set_index("variant")
        self.variants = sorted(first.index, key=lambda v: (
            analysis._is_baseline(v, first.loc[v, "device"]),
            vorder.index(v) if v in vorder else len(vorder), v))
        info = [(v, bool(first.loc[v, "paravirtual"]), analysis._is_baseline(v, first.loc[v, "device"]))
                for v in self.variants]
        self.palette = _Palette(info)
        vals = d["value"].to_numpy(dtype=float)
        self.values = {key: vals[pos] for key, pos in d.groupby(
            ["scenario", "workload", "metric", "variant", "series"], sort=False).indices.items()}
        self.stats: dict[tuple, tuple] = {}
        for row in self.summary.itertuples(index=False):
            self.stats[(row.scenario, row.workload, row.metric, row.variant, row.series)] = (
                row.median, row.ci_low, row.ci_high)
        self.scenario_series = {scn: [s for s in self.series if s in set(grp)]
                                for scn, grp in self.summary.groupby("scenario")["series"]}
        # Hatching tells runs of the same scenario apart; a scenario with one run gets none.
        for members in self.scenario_series.values():
            for i, s in enumerate(members):
                self.palette.hatch.setdefault(s, RUN_HATCHES[i % len(RUN_HATCHES)])

    def facet_label(self, scenario: str, workload: str) -> str:
        return f"{scenario} / {workload}" if self.multi_scenario else workload

    def facets(self, metrics: Iterable[str]) -> list[tuple[str, str]]:
        s = self.summary[self.summary["metric"].isin(list(metrics))]
        return sorted({(a, b) for a, b in zip(s["scenario"], s["workload"])})

    def unit(self, metric: str) -> str:
        s = self.summary[self.summary["metric"] == metric]["unit"]
        u = next((x for x in s if x and x != "unknown"), "")
        return u or (METRICS[metric].unit if metric in METRICS else "")

    def several(self, scenario: str) -> bool:
        """More than one run (series) of this scenario: bars are then told apart by hatching."""
        return len(self.scenario_series.get(scenario, [])) > 1

    def run_entries(self, scenarios: Iterable[str]) -> list[tuple[str, str, str]]:
        series = [s for s in self.series if any(s in self.scenario_series.get(x, []) for x in scenarios)]
        return [(s, "#ffffff", self.palette.hatch[s]) for s in series] if len(series) > 1 else []

    def variants_of(self, facets: Iterable[tuple[str, str]], metric: str) -> list[str]:
        facets = list(facets)
        return [v for v in self.variants if any((scn, wl, metric, v, s) in self.stats
                                                 for scn, wl in facets for s in self.series)]

    def variant_bars(self, ax, scenario: str, workload: str, metric: str,
                     groups: list[str] | None = None) -> None:
        """x = variant (``groups``: these, in this order), one bar per series (run)."""
        if groups is None:
            groups = self.variants_of([(scenario, workload)], metric)
        stats, points = {}, {}
        for v in groups:
            for s in self.series:
                key = (scenario, workload, metric, v, s)
                if key in self.stats:
                    stats[(v, s)] = self.stats[key]
                    points[(v, s)] = self.values.get(key)
        hues = [s for s in self.series if any(k[1] == s for k in stats)]
        _grouped_bars(ax, groups, hues, stats, points, self.palette.style)

    def hue_bars(self, ax, scenario: str, cells: list[tuple[str, str, str]], log: bool = False):
        """x = the given cells' labels, one bar per (variant, series). ``cells``: (x label,
        workload, metric). Returns the legend entries used."""
        groups = list(dict.fromkeys(c[0] for c in cells))
        stats, points, hues = {}, {}, {}
        for v in self.variants:
            for s in self.series:
                for label, wl, metric in cells:
                    key = (scenario, wl, metric, v, s)
                    if key in self.stats:
                        stats[(label, (v, s))] = self.stats[key]
                        points[(label, (v, s))] = self.values.get(key)
                        hues[(v, s)] = True
        _grouped_bars(ax, groups, list(hues), stats, points,
                      lambda g, h: self.palette.style(*h), log=log)
        several = self.several(scenario)
        return [(f"{v} \u00b7 {s}" if several else v, *self.palette.style(v, s)) for v, s in hues]


def _merge_entries(entries: list) -> list:
    return list(dict.fromkeys(entries))


def _direction_of(workload: str) -> tuple[str, str] | None:
    """("h2g" or "g2h", the name without it): "tcp-1-h2g" -> ("h2g", "tcp-1")."""
    m = DIRECTION.search(workload)
    if not m:
        return None
    base = (workload[:m.start()].rstrip("-_.") + "-" + workload[m.end():].lstrip("-_.")).strip("-")
    return m.group(1), base or workload


SPECIAL_METRICS = (set(BALLOON_GUEST) | set(BALLOON_HOST) | {"host_mem_returned"} | set(ENTROPY)
                   | {m for pct in LATENCY_PERCENTILES.values() for m in pct})


def _metric_figure(data: _Data, metric: str, skip: set) -> ReportFigure | None:
    """The figure of one metric: a panel per workload, bars per variant (and run)."""
    facets = [f for f in data.facets([metric]) if (f[0], f[1], metric) not in skip]
    if not facets:
        return None
    runs = data.run_entries({f[0] for f in facets})
    groups = data.variants_of(facets, metric)
    fig, axes = _new_figure(len(facets), legend=bool(runs), sharex=True)
    unit = data.unit(metric)
    for ax, (scn, wl) in zip(axes, facets):
        data.variant_bars(ax, scn, wl, metric, groups)
        _title(ax, data.facet_label(scn, wl), 10)
        ax.set_ylabel(_mpl_text(unit), fontsize=8)
    _legend(fig, runs, "run")
    better = "higher is better" if higher_is_better(metric) else "lower is better"
    fig.suptitle(_mpl_text(f"{metric_label(metric)} ({better})"), fontsize=11)
    return ReportFigure(id=f"metric-{_slug(metric)}", title=metric_label(metric), src=_png(fig),
                        alt=f"Median {metric_label(metric)} per variant and workload",
                        caption=f"Bars: median per variant; whiskers: bootstrap 95% CI of the "
                                f"median; dots: single repetitions (red triangles on the top edge: "
                                f"repetitions beyond a cut axis). {better.capitalize()}.")


def _latency_figure(data: _Data, family: str) -> ReportFigure | None:
    present = [m for m in LATENCY_PERCENTILES[family] if m in set(data.summary["metric"])]
    if not present:
        return None
    prefix = next((p for p in DIRECTION_PREFIXES if family.startswith(p)), "")
    facets = data.facets(present)
    fig, axes = _new_figure(len(facets), legend=True)
    unit = data.unit(present[0])
    entries = []
    for ax, (scn, wl) in zip(axes, facets):
        entries += data.hue_bars(ax, scn, [(m[len(prefix):].split("_", 1)[1], wl, m)
                                           for m in present], log=True)
        _title(ax, data.facet_label(scn, wl), 10)
        ax.set_ylabel(_mpl_text(f"{unit} (log scale)"), fontsize=8)
    _legend(fig, _merge_entries(entries))
    name = {"clat": "Completion latency", "rtt": "Round-trip time"}[family[len(prefix):]]
    if prefix:
        name = f"{prefix[:-1].capitalize()} completion latency"
    fig.suptitle(_mpl_text(f"{name} percentiles (lower is better)"), fontsize=11)
    return ReportFigure(id=f"latency-{_slug(family)}", title=f"{name} percentiles", src=_png(fig),
                        alt=f"{name} percentiles per variant",
                        caption="Median of each percentile over repetitions, bootstrap 95% CI, single "
                                "repetitions as dots; logarithmic scale.")


NETWORK_METRICS = ("throughput", "pps")


def _by_direction(data: _Data, metric: str) -> dict[tuple[str, str], dict[str, str]]:
    """(scenario, workload name without its direction) -> {"h2g": workload, "g2h": workload}."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for scn, wl in data.facets([metric]):
        d = _direction_of(wl)
        if d:
            out.setdefault((scn, d[1]), {})[d[0]] = wl
    return out


def _network_figure(data: _Data, metric: str) -> ReportFigure | None:
    by_base = _by_direction(data, metric)
    if not by_base:
        return None
    bases = sorted(by_base)
    fig, axes = _new_figure(len(bases), ncols=2, w=5.0, legend=True)
    entries = []
    for ax, (scn, base) in zip(axes, bases):
        cells = [(DIRECTION_LABEL[d], by_base[(scn, base)][d], metric)
                 for d in ("h2g", "g2h") if d in by_base[(scn, base)]]
        entries += data.hue_bars(ax, scn, cells)
        _title(ax, data.facet_label(scn, base), 10)
        ax.set_ylabel(_mpl_text(data.unit(metric)), fontsize=8)
    _legend(fig, _merge_entries(entries))
    fig.suptitle(_mpl_text(f"Network {metric_label(metric).lower()} by direction "
                           f"(higher is better)"), fontsize=11)
    return ReportFigure(id=f"network-{metric}",
                        title=f"Network {metric_label(metric).lower()} by direction", src=_png(fig),
                        alt=f"Network {metric} host to guest and guest to host",
                        caption="host \u2192 guest (h2g): the host sends, the guest receives; "
                                "guest \u2192 host (g2h): the guest sends. Median, bootstrap 95% CI, "
                                "repetitions as dots.")


def _panels_figure(data: _Data, panels: list[tuple[str, list[str]]], fig_id: str, title: str,
                   caption: str, alt: str) -> ReportFigure | None:
    """A row of panels per workload; in each panel x = metric, bars per variant (x run)."""
    have = set(data.summary["metric"])
    panels = [(t, [m for m in ms if m in have]) for t, ms in panels]
    panels = [(t, ms) for t, ms in panels if ms]
    if not panels:
        return None
    facets = data.facets([m for _t, ms in panels for m in ms])
    cells = [(scn, wl, t, ms) for scn, wl in facets for t, ms in panels]
    fig, axes = _new_figure(len(cells), ncols=len(panels), w=4.6, legend=True)
    entries = []
    for ax, (scn, wl, ptitle, metrics) in zip(axes, cells):
        entries += data.hue_bars(ax, scn, [(_short(metric_label(m)), wl, m) for m in metrics])
        _title(ax, f"{ptitle} \u2014 {data.facet_label(scn, wl)}", 9)
        ax.set_ylabel(_mpl_text(data.unit(metrics[0])), fontsize=8)
    _legend(fig, _merge_entries(entries))
    fig.suptitle(_mpl_text(title), fontsize=11)
    return ReportFigure(id=fig_id, title=title, src=_png(fig), alt=alt, caption=caption)


def _short(label: str) -> str:
    for prefix in ("Guest MemTotal ", "QEMU RSS "):
        if label.startswith(prefix):
            return label[len(prefix):]
    return {"Memory returned to host": "returned"}.get(label, label)


def _balloon_figure(data: _Data) -> ReportFigure | None:
    return _panels_figure(
        data, [("Guest MemTotal", list(BALLOON_GUEST)), ("QEMU RSS on the host", list(BALLOON_HOST)),
               ("Memory returned to the host", ["host_mem_returned"])],
        "balloon", "Balloon: guest memory and host memory",
        "Guest MemTotal before inflating, with the balloon inflated and after deflating; the QEMU "
        "process RSS on the host before and after inflating; the memory given back to the host.",
        "Balloon memory figures")


def _entropy_figure(data: _Data) -> ReportFigure | None:
    return _panels_figure(
        data, [("/dev/hwrng read rate", ["hwrng_read_rate"]),
               ("Time to crng init done", ["crng_init_time"]),
               ("entropy_avail (informational)", ["entropy_avail"])],
        "entropy", "Entropy: hardware RNG and kernel CRNG",
        "hwrng read rate (higher is better; absent without a virtio-rng device) and time from boot "
        "to 'crng init done' (lower is better). entropy_avail is informational only: since Linux "
        "5.18 it reads a constant 256.", "Entropy figures")


def _host_figure(data: _Data) -> ReportFigure | None:
    h = data.host
    if len(h) == 0:
        return None
    metric = next((m for m in ("iops", "bw", "throughput") if m in set(h["metric"])),
                  _metric_order(h["metric"].unique())[0])
    s = h[h["metric"] == metric]
    facets = sorted({(a, b) for a, b in zip(s["scenario"], s["workload"])})
    runs = data.run_entries({f[0] for f in facets})
    fig, axes = _new_figure(len(facets), legend=bool(runs))
    for ax, (scn, wl) in zip(axes, facets):
        sub = s[(s["scenario"] == scn) & (s["workload"] == wl)]
        stats = {}
        for row in sub.itertuples(index=False):
            lo, hi = _perf_ci(row)
            stats[(row.variant, row.run_id)] = (row.performance * 100, lo * 100, hi * 100)
        groups = [v for v in data.variants if any(k[0] == v for k in stats)]
        hues = [r for r in data.series if any(k[1] == r for k in stats)]
        _grouped_bars(ax, groups, hues, stats, {}, data.palette.style)
        ax.axhline(100, color="#444444", linestyle="--", linewidth=1, zorder=1)
        ax.set_ylabel("% of host-native", fontsize=8)
        _title(ax, data.facet_label(scn, wl), 10)
    _legend(fig, runs, "run")
    fig.suptitle(_mpl_text(f"{metric_label(metric)}: fraction of host-native performance"), fontsize=11)
    return ReportFigure(id="host-native", title="Fraction of host-native performance", src=_png(fig),
                        alt="Fraction of host-native performance per variant",
                        caption="100% = the same fio job run on the host itself (dashed line); whiskers: "
                                "bootstrap 95% CI.")


def _perf_ci(row) -> tuple[float, float]:
    """CI of the performance fraction (the inverse of the value fraction for lower-is-better)."""
    if row.higher_is_better:
        return row.ci_low, row.ci_high
    lo = 1 / row.ci_high if row.ci_high else math.nan
    hi = 1 / row.ci_low if row.ci_low else math.nan
    return lo, hi


# ---- rendering the figures, in parallel when there are many ---------------------------------------

_FIGURE_MAKERS = {"metric": _metric_figure, "latency": _latency_figure, "network": _network_figure,
                  "host": _host_figure, "balloon": _balloon_figure, "entropy": _entropy_figure}
_WORK: list = []
LAST_DRAW: dict = {}  # how the last figures were drawn (workers, fallback error): for tests/debugging


def _figure_tasks(data: _Data) -> list[tuple[str, tuple]]:
    """(section, args) for every figure the report shows, in page order within each section."""
    shown = {(scn, wl, metric) for metric in NETWORK_METRICS
             for (scn, _b), dirs in _by_direction(data, metric).items() for wl in dirs.values()}
    tasks: list[tuple[str, tuple]] = [("host", ())]
    tasks += [("metric", (m, shown)) for m in _metric_order(data.summary["metric"].unique())
              if m not in SPECIAL_METRICS]
    tasks += [("latency", (family,)) for family in LATENCY_PERCENTILES]
    tasks += [("network", (m,)) for m in NETWORK_METRICS]
    tasks += [("balloon", ()), ("entropy", ())]
    return tasks


def _jobs(ntasks: int, npanels: int) -> int:
    """Worker processes for drawing: VBENCH_REPORT_JOBS if set, else up to 4 for big pages."""
    env = os.environ.get("VBENCH_REPORT_JOBS", "")
    if env.strip().isdigit():
        return max(1, int(env))
    if npanels < 40 or ntasks < 4 or not hasattr(os, "fork"):
        return 1  # small pages: starting a pool costs more than it saves
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus, ntasks // 2))


def _run_job(i: int):
    fn, args = _WORK[i]
    return fn(*args)


def _draw(jobs: list[tuple[Any, tuple]], npanels: int) -> list:
    """Call every ``fn(*args)`` of ``jobs`` (each draws one figure) and return the results in
    order; with several CPUs and many panels in forked worker processes (the figures are
    independent and matplotlib is single-threaded; fork lets the workers inherit the analysed data
    instead of unpickling it). Falls back to drawing here if a pool cannot be used."""
    workers = _jobs(len(jobs), npanels)
    LAST_DRAW.clear()
    LAST_DRAW.update(workers=workers, fallback=None)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _WORK[:] = jobs
        try:
            with ProcessPoolExecutor(max_workers=workers,
                                     mp_context=multiprocessing.get_context("fork")) as pool:
                return list(pool.map(_run_job, range(len(jobs))))
        except Exception as exc:  # a broken pool must not cost the report: draw in this process
            LAST_DRAW.update(workers=1, fallback=f"{type(exc).__name__}: {exc}")
        finally:
            _WORK.clear()
    return [fn(*args) for fn, args in jobs]


def _render_figures(data: _Data) -> dict[str, list[ReportFigure]]:
    tasks = _figure_tasks(data)
    npanels = len(data.summary[["scenario", "workload", "metric"]].drop_duplicates())
    results = _draw([(_FIGURE_MAKERS[section], (data, *args)) for section, args in tasks], npanels)
    out: dict[str, list[ReportFigure]] = {k: [] for k in _FIGURE_MAKERS}
    for (section, _args), fig in zip(tasks, results):
        if fig is not None:
            out[section].append(fig)
    return out


# ---- tables for the template --------------------------------------------------------------------

def _ratio_rows(ratios, headline_only: bool, run_order: list[str]) -> list[dict]:
    r = ratios
    if headline_only:
        base = r["metric"].map(lambda m: next((m[len(p):] for p in DIRECTION_PREFIXES
                                                if m.startswith(p)), m))
        r = r[base.isin(HEADLINE_METRICS)]
    rank = {name: i for i, name in enumerate(run_order)}
    metrics = {m: i for i, m in enumerate(_metric_order(r["metric"].unique()))}
    r = r.assign(_r=r["run_id"].map(lambda x: rank.get(x, len(rank))), _m=r["metric"].map(metrics))
    r = r.sort_values(["_r", "scenario", "workload", "_m", "variant", "reference"], kind="stable")
    rows = []
    for x in r.itertuples(index=False):
        cls = {"better": "better", "worse": "worse"}.get(x.verdict, "ns")
        rows.append({
            "run": x.run_id, "scenario": x.scenario, "workload": x.workload,
            "metric": metric_label(x.metric), "metric_id": x.metric,
            "variant": x.variant, "reference": x.reference,
            "context": f"{x.accelerator} on {x.host}",
            "median": fmt_num(x.median), "median_reference": fmt_num(x.median_reference),
            "ratio": fmt_ratio(x.ratio), "ci": f"{fmt_ratio(x.ci_low)} \u2013 {fmt_ratio(x.ci_high)}",
            "p": fmt_p(x.p_value), "test": x.test, "n": f"{x.n}/{x.n_reference}",
            "verdict": x.verdict, "cls": cls,
            "direction": "higher is better" if x.higher_is_better else "lower is better",
        })
    return rows


def _summary_rows(summary) -> list[dict]:
    rows = []
    for x in summary.itertuples(index=False):
        rows.append({"run": x.run_id, "scenario": x.scenario, "workload": x.workload,
                     "metric": x.metric, "variant": x.variant, "model": x.model,
                     "context": f"{x.accelerator} on {x.host}", "n": x.n,
                     "median": fmt_num(x.median), "ci": f"{fmt_num(x.ci_low)} \u2013 {fmt_num(x.ci_high)}",
                     "mean": fmt_num(x.mean), "cv": fmt_pct(x.cv), "min": fmt_num(x.min),
                     "max": fmt_num(x.max), "unit": x.unit if x.unit != "unknown" else "",
                     "noisy": bool(x.noisy)})
    return rows


def _host_rows(host) -> list[dict]:
    rows = []
    for x in host.itertuples(index=False):
        lo, hi = _perf_ci(x)
        rows.append({"run": x.run_id, "scenario": x.scenario, "workload": x.workload,
                     "metric": metric_label(x.metric), "variant": x.variant,
                     "median": fmt_num(x.median), "host_median": fmt_num(x.host_median),
                     "performance": fmt_pct(x.performance), "ci": f"{fmt_pct(lo)} \u2013 {fmt_pct(hi)}"})
    return rows


ENV_FIELDS = (("host", "Host"), ("cpu_model", "CPU"), ("cpus", "CPUs"), ("memory_mib", "Memory (MiB)"),
              ("host_kernel", "Host kernel"), ("qemu_version", "QEMU"), ("libvirt_version", "libvirt"),
              ("libvirt_uri", "libvirt URI"), ("accelerator", "Accelerator"),
              ("accelerator_reason", "Accelerator reason"), ("fio_version_host", "fio on the host"))


def _run_view(run: RunInfo) -> dict:
    m = run.meta
    env = run.env
    scn = _dict(m.get("scenario"))
    variants = _dict(m.get("variants"))
    guest_kernels = sorted({str(_dict(v).get("guest_kernel")) for v in variants.values()
                            if _dict(v).get("guest_kernel")})
    env_rows = [(label, str(env.get(key))) for key, label in ENV_FIELDS
                if env.get(key) not in (None, "")]
    if guest_kernels:
        env_rows.append(("Guest kernel", ", ".join(guest_kernels)))
    for key, label in (("vbench_version", "vbench"), ("started", "Started"), ("finished", "Finished"),
                       ("status", "Status")):
        if m.get(key):
            env_rows.append((label, str(m.get(key))))
    drivers = []
    for vname, v in variants.items():
        v = _dict(v)
        for dev, dr in _dict(v.get("drivers")).items():
            dr = _dict(dr)
            exp, found = dr.get("expected"), dr.get("found")
            ok = (exp is None) or (str(exp) == str(found)) or (found and str(exp) in str(found).split())
            drivers.append({"variant": vname, "device": dev, "expected": "" if exp is None else str(exp),
                            "found": "" if found is None else str(found), "ok": bool(ok)})
    failures = []
    for f in _list(m.get("failures")):
        f = _dict(f)
        failures.append({k: ("" if f.get(k) is None else str(f.get(k)))
                         for k in ("variant", "workload", "repetition", "error", "console_tail")})
    workloads = []
    for wname, w in _dict(m.get("workloads")).items():
        w = _dict(w)
        opts = w.get("options")
        workloads.append({"name": wname, "tool": str(w.get("tool") or ""),
                          "options": json.dumps(opts, sort_keys=True, default=str) if opts else ""})
    return {
        "label": run.label, "path": str(run.path), "status": str(m.get("status") or "unknown"),
        "accelerator": run.accelerator or "unknown",
        "scenario_name": str(scn.get("name") or ""), "scenario_file": str(scn.get("file") or ""),
        "scenario_text": str(scn.get("text") or ""), "description": str(scn.get("description") or ""),
        "env": env_rows, "drivers": drivers, "failures": failures, "workloads": workloads,
        "diffs": _xml_diffs(variants), "problems": list(run.problems),
        "variants": [{"name": n, "device": str(_dict(v).get("device") or ""),
                      "model": str(_dict(v).get("model") or ""),
                      "paravirtual": _dict(v).get("paravirtual"),
                      "baseline": bool(_dict(v).get("baseline"))} for n, v in variants.items()],
    }


def _xml_diffs(variants: dict) -> dict:
    """Unified diff of each variant's domain XML against the first variant that has one."""
    xmls = [(n, str(_dict(v).get("domain_xml") or "")) for n, v in variants.items()
            if _dict(v).get("domain_xml") and not _dict(v).get("baseline")]
    if not xmls:
        return {"reference": "", "reference_xml": "", "items": []}
    ref_name, ref_xml = xmls[0]
    items = []
    for name, xml in xmls[1:]:
        lines = list(difflib.unified_diff(ref_xml.splitlines(), xml.splitlines(),
                                          fromfile=ref_name, tofile=name, lineterm="", n=2))
        items.append({"variant": name, "identical": not lines,
                      "lines": [{"text": ln, "cls": _diff_cls(ln)} for ln in lines]})
    return {"reference": ref_name, "reference_xml": ref_xml, "items": items}


def _diff_cls(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "dh"
    if line.startswith("@@"):
        return "dh"
    if line.startswith("+"):
        return "da"
    if line.startswith("-"):
        return "dd"
    return ""


@lru_cache(maxsize=1)
def _jinja():
    import jinja2

    # autoescape=True for every template: all text from scenarios, runs and guests is escaped.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters["num"] = fmt_num
    env.filters["pct"] = fmt_pct
    return env


def _render(template: str, **ctx) -> str:
    return _jinja().get_template(template).render(**ctx)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ---- the report ---------------------------------------------------------------------------------

def build_report(run_paths: list[Path], out_dir: Path, title: str | None = None,
                 history_root: Path | None = None) -> Path:
    """Write ``out_dir/index.html`` for one or more runs (side by side) and return its path.

    With ``history_root`` (a results root), history pages of the runs' scenarios are written under
    ``out_dir/history/<scenario>/`` and linked.
    """
    out_dir = Path(out_dir)
    warnings: list[str] = []
    runs, df = _load_runs(run_paths, warnings)
    views = [_run_view(r) for r in runs]
    tcg_runs = [r.label for r in runs if r.accelerator.lower() == "tcg"]
    if len(df):
        tcg_runs += sorted(set(df.loc[df["accelerator"].astype(str).str.lower() == "tcg", "run_id"])
                           - set(tcg_runs))
    figures: dict[str, list[ReportFigure]] = {"metrics": [], "latency": [], "network": [],
                                              "balloon": [], "entropy": [], "host": []}
    headline, all_ratios, summary_rows, host_rows = [], [], [], []
    contexts: list[tuple[str, str]] = []
    scenarios: list[str] = []
    if len(df):
        data = _Data(df, runs)
        from . import analysis

        contexts = analysis.contexts(data.df)
        scenarios = data.scenarios
        order = [r.label for r in runs]
        headline = _ratio_rows(data.ratios, True, order)
        all_ratios = _ratio_rows(data.ratios, False, order)
        summary_rows = _summary_rows(data.summary)
        host_rows = _host_rows(data.host)
        drawn = _render_figures(data)
        drawn["metrics"] = drawn.pop("metric")
        figures.update(drawn)
        noisy = int(data.summary["noisy"].sum())
        if noisy:
            warnings.append(f"{noisy} of {len(data.summary)} groups are noisy (coefficient of "
                            f"variation above {analysis.NOISY_CV:.0%}); their numbers are marked in "
                            f"the summary table")
    else:
        warnings.append("no samples in these runs: nothing to plot")
    if not scenarios:
        scenarios = sorted({v["scenario_name"] for v in views if v["scenario_name"]})
    history_links = []
    if history_root is not None:
        for scn in scenarios:
            try:
                build_history(history_root, scn, out_dir / "history" / _slug(scn))
                history_links.append({"scenario": scn, "href": f"history/{_slug(scn)}/index.html"})
            except UserError as exc:
                warnings.append(f"no history for {scn}: {exc}")
    if title is None:
        title = "vbench: " + ", ".join(scenarios or ["report"]) + " \u2014 " + ", ".join(
            r.label for r in runs[:4]) + (" \u2026" if len(runs) > 4 else "")
    html = _render(
        "report.html.j2", title=title, generated=_now(), version=__version__, runs=views,
        tcg_runs=tcg_runs, contexts=[f"{a} on {h}" for a, h in contexts],
        mixed=len(contexts) > 1, headline=headline, all_ratios=all_ratios, summary=summary_rows,
        host_rows=host_rows, figures=figures, warnings=warnings, history_links=history_links,
        multi_run=len(runs) > 1, has_entropy_avail=bool(len(df)) and "entropy_avail" in set(df["metric"]),
        incomplete=[v for v in views if v["status"] != "complete"])
    atomic_write(out_dir / "index.html", html)
    return out_dir / "index.html"


# ---- history --------------------------------------------------------------------------------------

def build_history(results_root: Path, scenario: str, out_dir: Path) -> Path:
    """Write ``out_dir/index.html``: per (workload, metric) the median of every variant over the
    runs of ``scenario`` in time order, with the change points found by
    :func:`vbench.analysis.change_points` marked. Contexts (accelerator, host) are separate lines."""
    import pandas as pd

    from . import analysis

    results_root = Path(results_root)
    out_dir = Path(out_dir)
    warnings: list[str] = []
    paths = find_runs(results_root, scenario, warn=warnings.append)
    if not paths:
        raise UserError(f"no runs of scenario {scenario!r} under {results_root}; run it with "
                        f"`vbench run` or point --results at the right directory")
    runs, frames = [], []
    for p in paths:
        try:
            meta = load_meta(p)
        except StoreError as exc:
            warnings.append(f"skipping {p}: {exc}")
            continue
        df = load_samples(p, warn=warnings.append)
        df["run_id"] = p.name
        df = df[df["scenario"].astype(str) == scenario] if len(df) else df
        frames.append(df)
        runs.append({"label": p.name, "started": str(meta.get("started") or ""),
                     "status": str(meta.get("status") or "unknown"),
                     "accelerator": str(_dict(meta.get("environment")).get("accelerator") or ""),
                     "host": str(_dict(meta.get("environment")).get("host") or ""),
                     "n": int(len(df))})
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    order = [r["label"] for r in runs]
    figures: list[ReportFigure] = []
    change_rows: list[dict] = []
    if len(df):
        points, changes = analysis.history_table(df, run_order=order)
        variants = sorted(points["variant"].unique())
        jobs = [(_history_figure, (metric, points[points["metric"] == metric],
                                   changes[changes["metric"] == metric], order, variants))
                for metric in _metric_order(points["metric"].unique())]
        npanels = len(points[["workload", "metric"]].drop_duplicates())
        figures = [f for f in _draw(jobs, npanels) if f is not None]
        for x in changes.itertuples(index=False):
            change_rows.append({"workload": x.workload, "metric": metric_label(x.metric),
                                "variant": x.variant, "context": f"{x.accelerator} on {x.host}",
                                "run": x.run_id, "before": fmt_num(x.before), "after": fmt_num(x.after),
                                "step": fmt_pct(x.step, signed=True),
                                "cls": "worse" if (x.step < 0) == higher_is_better(x.metric) else "better"})
    else:
        warnings.append("the runs hold no samples of this scenario")
    accels = sorted({r["accelerator"] for r in runs if r["accelerator"]})
    html = _render("history.html.j2", title=f"vbench history: {scenario}", scenario=scenario,
                   generated=_now(), version=__version__, runs=runs, figures=figures,
                   changes=change_rows, warnings=warnings, accelerators=accels,
                   tcg=any(a.lower() == "tcg" for a in accels), results_root=str(results_root))
    atomic_write(out_dir / "index.html", html)
    return out_dir / "index.html"


def _history_figure(metric: str, points, changes, order: list[str],
                    variants: list[str]) -> ReportFigure | None:
    """One metric over the runs: a panel per workload, a line per variant (and context), change
    points marked."""
    if len(points) == 0:
        return None
    workloads = sorted(points["workload"].unique())
    fig, axes = _new_figure(len(workloads), ncols=2, w=6.6, h=2.9, legend=True, sharex=True)
    split_ctx = len(points[["accelerator", "host"]].drop_duplicates()) > 1
    styles = ("-", "--", ":", "-.")
    entries: dict[str, tuple] = {}
    contexts = sorted({(a, h) for a, h in zip(points["accelerator"], points["host"])})
    for ax, wl in zip(axes, workloads):
        grp = points[points["workload"] == wl]
        ch = changes[changes["workload"] == wl]
        for (variant, accel, host), line in grp.groupby(["variant", "accelerator", "host"], sort=True):
            colour = HOST_COLOUR if variant == "host" else \
                RUN_COLOURS[variants.index(variant) % len(RUN_COLOURS)]
            style = styles[contexts.index((accel, host)) % len(styles)]
            label = f"{variant} ({accel}, {host})" if split_ctx else variant
            ax.plot(line["position"], line["median"], marker="o", markersize=3, linewidth=1.2,
                    color=colour, linestyle=style)
            entries.setdefault(label, (colour, style))
            c = ch[(ch["variant"] == variant) & (ch["accelerator"] == accel) & (ch["host"] == host)]
            for pos in c["position"]:
                ax.axvline(pos - 0.5, color=colour, linestyle="--", linewidth=1.0, alpha=0.8)
                y = line.loc[line["position"] == pos, "median"]
                if len(y):
                    ax.plot([pos], [float(y.iloc[0])], marker="v", markersize=9, color="#d62728",
                            linestyle="none", zorder=5)
        _title(ax, wl, 10)
        ax.set_ylabel(_mpl_text(METRICS[metric].unit if metric in METRICS else ""), fontsize=8)
        ax.grid(alpha=0.3)
    n = len(order)
    step = max(1, math.ceil(n / 16))
    ticks = list(range(0, n, step))
    for ax in axes:
        ax.set_xticks(ticks)
        ax.set_xticklabels([_mpl_text(order[t][:22]) for t in ticks], rotation=30, ha="right",
                           fontsize=7)
        ax.set_xlim(-0.5, n - 0.5)
    from matplotlib.lines import Line2D

    fig.legend(handles=[Line2D([], [], color=c, linestyle=ls, marker="o", markersize=3,
                               label=_mpl_text(lbl)) for lbl, (c, ls) in entries.items()],
               loc="upper right", fontsize=8, framealpha=0.9, borderaxespad=0.6)
    better = "higher is better" if higher_is_better(metric) else "lower is better"
    fig.suptitle(_mpl_text(f"{metric_label(metric)} over the runs ({better})"), fontsize=11)
    return ReportFigure(id=f"h-{_slug(metric)}", title=f"{metric_label(metric)} over the runs",
                        src=_png(fig), alt=f"History of {metric_label(metric)} per workload",
                        caption="Median per run, oldest left, one panel per workload; dashed "
                                "line and red triangle: a change point (a new level starts).")
