"""The report's figures, one function each, found through a registry.

A figure kind is a function ``draw(data, *args) -> ReportFigure | None`` registered with
:func:`figure` under the page section it belongs to, together with a function listing the
figures of that kind a report needs (one per metric, say). Adding a figure is one decorated
function in this package; the page and the parallel drawing find it in :data:`REGISTRY`.

How they read: medians as dots with their 95 % interval (a line) and the single repetitions as
small dots, on a log axis when the values span more than 3x; the host-native baseline is a dashed
reference line, never a bar that flattens the guests; one colour per variant on every page, one
marker per run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from vbench.core.metrics import higher_is_better, metric_label
from vbench.report.data import Data, direction_of, metric_order
from vbench.report.draw import (Dot, dot_rows, fig_title, legend, log_axis, mpl_text, new_figure,
                                png, row_labels, title)
from vbench.report.palette import HOST_COLOUR, verdict_colour


@dataclass
class ReportFigure:
    id: str
    title: str
    src: str
    alt: str
    caption: str = ""
    png: bytes = b""  # the raw PNG when the page also writes it as a file


@dataclass(frozen=True)
class FigureKind:
    section: str
    draw: Callable[..., ReportFigure | None]
    tasks: Callable[[Data], list[tuple]]


REGISTRY: list[FigureKind] = []


def figure(section: str, tasks: Callable[[Data], list[tuple]] = lambda data: [()]):
    """Register a figure kind: ``@figure("latency", tasks=lambda data: [(family,), ...])``."""
    def register(fn):
        REGISTRY.append(FigureKind(section, fn, tasks))
        return fn
    return register


# ---- the figures of single metrics ----------------------------------------------------------------

LAT_FAMILIES = {p + "clat": tuple(p + m for m in ("clat_p50", "clat_p99", "clat_p99.9"))
                for p in ("", "read_", "write_")}
LAT_FAMILIES["rtt"] = ("rtt_p50", "rtt_p99")
BALLOON_GUEST = ("guest_mem_before", "guest_mem_shrunk", "guest_mem_after")
BALLOON_HOST = ("host_rss_before", "host_rss_shrunk")
ENTROPY = ("hwrng_read_rate", "crng_init_time", "entropy_avail")
NETWORK_METRICS = ("throughput", "pps")
SPECIAL = (set(BALLOON_GUEST) | set(BALLOON_HOST) | {"host_mem_returned"} | set(ENTROPY)
           | {m for ms in LAT_FAMILIES.values() for m in ms})


def facet_dots(data: Data, scn: str, wl: str, metric: str) -> tuple[list[Dot], float | None]:
    """The rows of one panel (variant x run, baseline left out) and the host-native median."""
    rows, host = [], None
    for v in data.variants:
        for s in data.series:
            key = (scn, wl, metric, v, s)
            if key not in data.stats:
                continue
            med, lo, hi = data.stats[key]
            if v in data.baseline:
                host = med if host is None else host
                continue
            rows.append(Dot(v, data.palette[v], med, lo, hi, data.values.get(key, ()),
                            data.marker[s]))
    return rows, host


def panel_height(dots: list[Dot]) -> float:
    rows = {d.label for d in dots}
    per_row = max(1, len(dots) // max(1, len(rows)))
    return max(1.5, (0.3 + 0.14 * (per_row - 1)) * len(rows) + 0.7)


def _dot_figure(data: Data, facets: list[tuple[str, str, str]], heading: str, ncols: int = 3,
                sharex: bool = False, label: Callable[[str, str, str], str] | None = None):
    """A figure of dot panels: ``facets`` = (scenario, workload, metric) per panel, titled
    ``label(scenario, workload, metric)`` (default: the workload)."""
    panels = [(f, *facet_dots(data, *f)) for f in facets]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    # a panel naming the same rows as the first of its grid row leaves them unnamed
    names = [row_labels(p[1]) for p in panels]
    named = [i % ncols == 0 or names[i] != names[i - i % ncols] for i in range(len(panels))]
    fig, axes = new_figure(len(panels), ncols=ncols, h=[panel_height(p[1]) for p in panels],
                           legend=data.multi_run, sharex=sharex,
                           gap=None if any(named[i] for i in range(len(panels)) if i % ncols) else 0.5)
    for ax, ((scn, wl, metric), rows, host), own in zip(axes, panels, named):
        dot_rows(ax, rows, reference=host, reference_label="host-native" if host else "", labels=own)
        title(ax, label(scn, wl, metric) if label else data.facet_label(scn, wl),
              9 if label else 10)
        ax.set_xlabel(mpl_text(data.unit(metric)), fontsize=8)
    legend(fig, data.run_entries(), "run")
    fig_title(fig, heading)
    return fig


def _metric_tasks(data: Data) -> list[tuple]:
    shown = {(scn, wl, m) for m in NETWORK_METRICS for (scn, _b), dirs in by_direction(data, m).items()
             for wl in dirs.values()}
    return [(m, shown) for m in metric_order(data.metrics) if m not in SPECIAL]


@figure("metrics", tasks=_metric_tasks)
def metric_figure(data: Data, metric: str, skip: set) -> ReportFigure | None:
    """One metric: a panel per workload, a dot per variant (and run)."""
    facets = [(s, w, metric) for s, w in data.facets([metric]) if (s, w, metric) not in skip]
    better = "higher is better" if higher_is_better(metric) else "lower is better"
    fig = _dot_figure(data, facets, f"{metric_label(metric)} [{data.unit(metric)}] ({better})")
    if fig is None:
        return None
    return ReportFigure(id=f"metric-{slug_id(metric)}", title=metric_label(metric), src=png(fig),
                        alt=f"Median {metric_label(metric)} per variant and workload",
                        caption=f"Big dot: median per variant; line: 95% interval of the median "
                                f"(t on logs); small dots: single repetitions; dashed line: host-native "
                                f"(when measured). {better.capitalize()}.")


def slug_id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in text)[:80]


# ---- latency percentiles as curves ----------------------------------------------------------------

@figure("latency", tasks=lambda data: [(f,) for f in LAT_FAMILIES])
def latency_figure(data: Data, family: str) -> ReportFigure | None:
    """Latency percentiles: a curve per variant (and run) over p50 .. p99.9, per workload."""
    present = [m for m in LAT_FAMILIES[family] if m in data.metrics]
    if not present:
        return None
    facets = data.facets(present)
    fig, axes = new_figure(len(facets), ncols=3, h=3.2, legend=True, left=0.9)
    entries: dict[str, tuple] = {}
    ticks = [m.rsplit("_", 1)[1] for m in present]
    for ax, (scn, wl) in zip(axes, facets):
        for v in data.variants:
            for s in data.series:
                got = [(i, data.stats.get((scn, wl, m, v, s))) for i, m in enumerate(present)]
                pts = [(i, st) for i, st in got if st is not None]
                if not pts:
                    continue
                colour = HOST_COLOUR if v in data.baseline else data.palette[v]
                xs = [i for i, _ in pts]
                med = [st[0] for _, st in pts]
                err = [[max(0.0, st[0] - st[1]) for _, st in pts],
                       [max(0.0, st[2] - st[0]) for _, st in pts]]
                ax.errorbar(xs, med, yerr=err, color=colour, marker=data.marker[s], markersize=5,
                            linewidth=1.6, capsize=3,
                            linestyle="--" if v in data.baseline else "-")
                label = data.series_label(v, s) + (" (host-native)" if v in data.baseline else "")
                entries.setdefault(label, (colour, data.marker[s]))
        log_axis(ax.yaxis)
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels(ticks, fontsize=9)
        ax.set_xlim(-0.3, len(present) - 0.7)
        ax.grid(alpha=0.3)
        ax.set_ylabel(mpl_text(f"{data.unit(present[0])} (log)"), fontsize=8)
        title(ax, data.facet_label(scn, wl))
    legend(fig, [(k, c, m) for k, (c, m) in entries.items()])
    name = "Round-trip time" if family == "rtt" else (
        f"{family.split('_')[0].capitalize()} completion latency" if "_" in family
        else "Completion latency")
    fig_title(fig, f"{name} percentiles (lower is better)")
    return ReportFigure(id=f"latency-{slug_id(family)}", title=f"{name} percentiles", src=png(fig),
                        alt=f"{name} percentiles per variant",
                        caption="A curve per variant through its p50, p99 (and p99.9): the median "
                                "of each percentile over the repetitions, whiskers the 95% "
                                "interval (t on logs); log scale. Host-native dashed grey.")


# ---- network: each direction side by side ---------------------------------------------------------

DIRECTIONS = (("h2g", "host \u2192 guest"), ("g2h", "guest \u2192 host"))


def by_direction(data: Data, metric: str) -> dict[tuple[str, str], dict[str, str]]:
    """(scenario, workload name without its direction) -> {"h2g": workload, "g2h": workload}."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for scn, wl in data.facets([metric]):
        d = direction_of(wl)
        if d:
            out.setdefault((scn, d[1]), {})[d[0]] = wl
    return out


@figure("network", tasks=lambda data: [(m,) for m in NETWORK_METRICS])
def network_figure(data: Data, metric: str) -> ReportFigure | None:
    """Per workload two panels side by side, host -> guest and guest -> host, on one x scale."""
    by_base = by_direction(data, metric)
    if not by_base:
        return None
    facets, names = [], []
    for scn, base in sorted(by_base):
        for d, label in DIRECTIONS:
            wl = by_base[(scn, base)].get(d)
            facets.append((scn, wl or "", metric))
            names.append(f"{data.facet_label(scn, base)}: {label}")
    panels = [facet_dots(data, *f) for f in facets]
    h = max((panel_height(p[0]) for p in panels if p[0]), default=1.5)
    fig, axes = new_figure(len(facets), ncols=2, h=h, legend=data.multi_run)
    for i in range(0, len(axes), 2):
        pair = list(zip(axes[i:i + 2], panels[i:i + 2], names[i:i + 2]))
        allv = [r.median for _a, (rows, _h), _n in pair for r in rows]
        for ax, (rows, host), name in pair:
            if rows:
                dot_rows(ax, rows, log=False, reference=host,
                         reference_label="host-native" if host else "")
            title(ax, name)
            ax.set_xlabel(mpl_text(data.unit(metric)), fontsize=8)
        if allv:
            top = max(max(allv), *[max(r.points, default=0) for _a, (rows, _h), _n in pair
                                   for r in rows]) * 1.08
            for ax, _p, _n in pair:
                ax.set_xlim(0, top)
    legend(fig, data.run_entries(), "run")
    fig_title(fig, f"Network {metric_label(metric).lower()} [{data.unit(metric)}] by "
                          f"direction (higher is better)")
    return ReportFigure(id=f"network-{metric}",
                        title=f"Network {metric_label(metric).lower()} by direction", src=png(fig),
                        alt=f"Network {metric} host to guest and guest to host",
                        caption="Left host \u2192 guest (the guest receives), right guest \u2192 host "
                                "(the guest sends), on the same scale. Median, 95% interval "
                                "(t on logs), repetitions as small dots.")


# ---- fraction of host-native ----------------------------------------------------------------------

def perf_ci(row) -> tuple[float, float]:
    """CI of the performance fraction (the inverse of the value fraction for lower-is-better)."""
    if row.higher_is_better:
        return row.ci_low, row.ci_high
    lo = 1 / row.ci_high if row.ci_high else math.nan
    hi = 1 / row.ci_low if row.ci_low else math.nan
    return lo, hi


@figure("host")
def host_figure(data: Data) -> ReportFigure | None:
    """Each variant as a percentage of host-native; above 100 % is drawn in red (suspicious)."""
    h = data.host
    if len(h) == 0:
        return None
    metric = next((m for m in ("iops", "bw", "throughput") if m in set(h["metric"])),
                  metric_order(h["metric"].unique())[0])
    s = h[h["metric"] == metric]
    facets = sorted({(a, b) for a, b in zip(s["scenario"], s["workload"])})
    panels = []
    order = {v: i for i, v in enumerate(data.variants)}
    for scn, wl in facets:
        rows = []
        sub = s[(s["scenario"] == scn) & (s["workload"] == wl)]
        sub = sub.assign(_o=sub["variant"].map(order)).sort_values(["_o", "run_id"], kind="stable")
        for x in sub.itertuples(index=False):
            lo, hi = perf_ci(x)
            over = x.performance > 1
            rows.append(Dot(x.variant + ("  \u26a0" if over else ""),
                            verdict_colour("worse") if over else data.palette[x.variant],
                            x.performance * 100, lo * 100, hi * 100, (), data.marker.get(x.run_id, "o")))
        panels.append((scn, wl, rows))
    fig, axes = new_figure(len(panels), ncols=3, h=[panel_height(p[2]) for p in panels],
                           legend=data.multi_run)
    for ax, (scn, wl, rows) in zip(axes, panels):
        dot_rows(ax, rows, log=False, reference=100.0, reference_label="host-native = 100%")
        ax.set_xlim(left=0, right=max(110.0, max(r.hi if math.isfinite(r.hi) else r.median
                                                 for r in rows) * 1.05))
        ax.set_xlabel("% of host-native", fontsize=8)
        title(ax, data.facet_label(scn, wl))
    legend(fig, data.run_entries(), "run")
    fig_title(fig, f"{metric_label(metric)}: % of host-native performance")
    return ReportFigure(id="host-native", title="Fraction of host-native performance", src=png(fig),
                        alt="Fraction of host-native performance per variant",
                        caption="100% = the same fio job run on the host itself (dashed line); line: "
                                "95% interval (Welch on logs). Red with \u26a0: a guest above the host, "
                                "which a guest cannot be: the baseline is not the same job, or a "
                                "cache answered.")


# ---- balloon and entropy: a panel per metric group ------------------------------------------------

def _group_figure(data: Data, groups: tuple[str, ...], fig_id: str, heading: str,
                  caption: str) -> ReportFigure | None:
    """A panel per (workload, metric) of ``groups``, in that order."""
    facets = [(scn, wl, m) for scn, wl in data.facets(groups) for m in groups
              if any((scn, wl, m, v, s) in data.stats for v in data.variants for s in data.series)]
    fig = _dot_figure(data, facets, heading, ncols=3,
                      label=lambda scn, wl, m: f"{metric_label(m)} \u2014 {data.facet_label(scn, wl)}")
    if fig is None:
        return None
    return ReportFigure(id=fig_id, title=heading, src=png(fig), alt=heading, caption=caption)


@figure("balloon")
def balloon_figure(data: Data) -> ReportFigure | None:
    return _group_figure(
        data, BALLOON_GUEST + BALLOON_HOST + ("host_mem_returned",),
        "balloon", "Balloon: guest memory and host memory",
        "Guest MemTotal before inflating, with the balloon inflated and after deflating; the QEMU "
        "process RSS on the host before and after inflating; the memory given back to the host.")


@figure("entropy")
def entropy_figure(data: Data) -> ReportFigure | None:
    return _group_figure(
        data, ENTROPY, "entropy", "Entropy: hardware RNG and kernel CRNG",
        "hwrng read rate (higher is better; absent without a virtio-rng device) and time from boot "
        "to 'crng init done' (lower is better). entropy_avail is informational only: since Linux "
        "5.18 it reads a constant 256.")
