"""The headline figure: a forest plot of every paravirtual/emulated ratio.

One panel per workload, one row per metric and device pair, one dot per run: the paravirtual
device's advantage over its emulated peer on a log axis around a 1x line, with the 95 %
interval, coloured by the verdict (green better, red worse, grey no significant difference).
The advantage is the ratio of medians turned so that right of 1x is always better for the
paravirtual device: virtio / emulated for throughput-like metrics, emulated / virtio for
latency- and CPU-like ones. All panels share one x scale, so bars of different workloads compare.
"""

from __future__ import annotations

import math

from vbench.core.metrics import base_metric, metric_label
from vbench.report.data import Data, metric_order
from vbench.report.draw import (PAGE_WIDTH, data_uri, fig_title, log_locator, mpl_text, new_figure,
                                png_bytes, title)
from vbench.report.figures import ReportFigure
from vbench.report.palette import VERDICT_COLOURS, verdict_colour



def advantage(ratio: float, lo: float, hi: float, higher_better: bool) -> tuple[float, float, float]:
    """The ratio (and its interval) turned so that above 1 means the paravirtual device is better."""
    if higher_better:
        return ratio, lo, hi

    def inv(x: float) -> float:
        return 1.0 / x if x and math.isfinite(x) else math.nan
    return inv(ratio), inv(hi), inv(lo)


SHORT = {"iops": "IOPS", "bw": "bandwidth", "clat_p99": "p99 latency", "clat_p50": "p50 latency",
         "clat_p99.9": "p99.9 latency", "clat_mean": "mean latency", "guest_cpu_per_io": "guest CPU/IO",
         "host_cpu_per_io": "host CPU/IO", "host_cpu_per_gbit": "host CPU/Gbit",
         "guest_cpu_per_gbit": "guest CPU/Gbit",
         "guest_cpu_usr": "guest CPU usr", "guest_cpu_sys": "guest CPU sys", "rtt_p50": "RTT p50",
         "rtt_p99": "RTT p99", "crng_init_time": "crng init time", "hwrng_read_rate": "hwrng rate"}


def short_label(metric: str) -> str:
    base = base_metric(metric)
    prefix = metric[:len(metric) - len(base)].rstrip("_")
    return (f"{prefix} " if prefix else "") + SHORT.get(base, metric_label(base))


def _rows(data: Data, ratios) -> dict[tuple[str, str], list[tuple[str, list]]]:
    """(scenario, workload) -> [(row label, [(run, adv, lo, hi, verdict)])], metrics in order."""
    pairs = ratios[["variant", "reference"]].drop_duplicates()
    many_pairs = len(pairs) > 1
    order = {m: i for i, m in enumerate(metric_order(ratios["metric"].unique()))}
    r = ratios.assign(_m=ratios["metric"].map(order)).sort_values(
        ["scenario", "workload", "_m", "variant", "reference"], kind="stable")
    panels: dict[tuple[str, str], dict[str, list]] = {}
    for x in r.itertuples(index=False):
        label = short_label(x.metric)
        if many_pairs:
            label += f" \u00b7 {x.variant} / {x.reference}"
        adv, lo, hi = advantage(x.ratio, x.ci_low, x.ci_high, bool(x.higher_is_better))
        if not math.isfinite(adv) or adv <= 0:
            continue
        panels.setdefault((x.scenario, x.workload), {}).setdefault(label, []).append(
            (x.run_id, adv, lo, hi, x.verdict))
    return {k: list(v.items()) for k, v in panels.items()}


def _limits(panels) -> tuple[float, float]:
    vals = [v for rows in panels.values() for _l, dots in rows for _r, a, lo, hi, _v in dots
            for v in (a, lo, hi) if math.isfinite(v) and v > 0]
    lo, hi = min(vals + [1.0]), max(vals + [1.0])
    return lo / 1.3, hi * 1.6  # room right of the intervals for the value labels


def _runs_of(rows) -> list[str]:
    return list(dict.fromkeys(run for _l, dots in rows for run, *_x in dots))


LABEL_LIMIT = 240  # value labels on the dots up to this many dots (text is slow to draw)


def _panel(ax, rows, data: Data, xlim: tuple[float, float], labels: bool,
           names: bool = True) -> None:
    n = len(rows)
    runs = _runs_of(rows)
    runs = runs if len(runs) > 1 else []
    step = 0.7 / max(1, len(runs)) if runs else 0.0
    pts = []  # (x, lo, hi, y, colour, marker, verdict)
    for i, (_label, dots) in enumerate(rows):
        y0 = n - 1 - i
        for run, adv, lo, hi, verdict in dots:
            k = runs.index(run) if run in runs else 0
            pts.append((adv, lo, hi, y0 + (0.35 - step * (k + 0.5) if runs else 0.0),
                        verdict_colour(verdict), data.marker.get(run, "o"), verdict))
    spans = [p for p in pts if math.isfinite(p[1]) and math.isfinite(p[2])]
    ax.hlines([p[3] for p in spans], [max(p[1], xlim[0]) for p in spans],
              [min(p[2], xlim[1]) for p in spans], colors=[p[4] for p in spans], linewidth=2.4,
              zorder=3)
    for marker in dict.fromkeys(p[5] for p in pts):
        mine = [p for p in pts if p[5] == marker]
        ax.scatter([p[0] for p in mine], [p[3] for p in mine], s=52, c=[p[4] for p in mine],
                   marker=marker, edgecolors="#222222", linewidths=0.6, zorder=4)
    for adv, _lo, hi, y, c, _m, verdict in pts if labels else ():
        ax.annotate(f"{adv:.2f}\u00d7", (min(hi if math.isfinite(hi) else adv, xlim[1]), y),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8, color=c,
                    fontweight="bold" if verdict in VERDICT_COLOURS else "normal")
    ax.axvline(1.0, color="#333333", linewidth=1.2, zorder=2)
    ax.barh(range(0, n, 2), 1, height=1.0, left=0, color="#f3f5f7", zorder=0,
            transform=ax.get_yaxis_transform())  # stripes on every other row
    ax.set_xscale("log")
    ax.set_xlim(*xlim)
    ax.set_ylim(-0.5, n - 0.5)
    if names:
        ax.set_yticks(range(n), [mpl_text(lbl) for lbl, _d in rows][::-1], fontsize=8.5)
    else:  # the same rows as the first panel of this grid row names: no ticks to build at all
        ax.set_yticks([])
    ax.grid(axis="x", alpha=0.35, which="major", zorder=1)
    ax.tick_params(axis="x", labelsize=8)
    from matplotlib.ticker import FuncFormatter, NullLocator

    ax.xaxis.set_major_locator(log_locator())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}\u00d7"))


def forest_figure(data: Data, ratios, fig_id: str = "forest",
                  heading: str | None = None) -> ReportFigure | None:
    """The forest plot of ``ratios`` (rows of :func:`vbench.stats.summary.ratios`, by run)."""
    if len(ratios) == 0:
        return None
    panels = _rows(data, ratios)
    if not panels:
        return None
    from vbench.stats.summary import pair_words

    pv, emu = pair_words(data.references)
    heading = heading or f"{pv.capitalize()} advantage over {emu}"
    keys = sorted(panels)
    xlim = _limits(panels)
    # room for the longest row label left of each panel, and panels at least 3.6 in wide
    left = 0.3 + 0.075 * max(len(lbl) for k in keys for lbl, _d in panels[k])
    fit = max(1, int((PAGE_WIDTH - 2.3 + left) // (left + 3.6)))
    ncols = min(fit, 1 if len(keys) == 1 else (2 if len(keys) in (2, 4) else 3))
    per_row = 0.3 + 0.15 * (max(len(_runs_of(panels[k])) for k in keys) - 1)
    # a panel naming the same rows as the first of its grid row leaves them unnamed
    names = [[lbl for lbl, _d in panels[k]] for k in keys]
    named = [i % ncols == 0 or names[i] != names[i - i % ncols] for i in range(len(keys))]
    fig, axes = new_figure(len(keys), ncols=ncols, h=[max(1.1, per_row * len(panels[k]) + 0.5)
                                                      for k in keys],
                           legend=True, left=left, top=1.0,
                           gap=left if any(named[i] for i in range(len(keys)) if i % ncols) else 0.5)
    labels = sum(len(d) for k in keys for _l, d in panels[k]) <= LABEL_LIMIT
    for ax, (scn, wl), own in zip(axes, keys, named):
        _panel(ax, panels[(scn, wl)], data, xlim, labels, names=own)
        title(ax, data.facet_label(scn, wl), 11)
    _verdict_legend(fig, data)
    pairs = ratios[["variant", "reference"]].drop_duplicates()
    sub = "; ".join(f"{a} vs {b}" for a, b in zip(pairs["variant"], pairs["reference"]))
    if len(pairs) > 3:
        sub = f"{len(pairs)} device pairs"
    accels = sorted({str(a).upper() for a in ratios["accelerator"]})
    sub += f" under {' and '.join(accels)}" if accels else ""
    fig_title(fig, f"{heading}: {sub}  (right of 1\u00d7 = {pv} better)", 12.5,
              fontweight="bold")
    raw = png_bytes(fig)
    return ReportFigure(
        id=fig_id, title=heading, src=data_uri(raw), png=raw,
        alt=f"Forest plot of every {pv}/{emu} ratio with 95% intervals",
        caption=f"Each row: how many times better the {pv} is than its {emu} "
                "on one metric (ratio of medians, estimated on logs; turned for latency and CPU, "
                "where lower is better, so that right of 1\u00d7 is always better), with the 95% "
                "interval. Green: significantly better; red: significantly worse; grey: no "
                "significant difference (p \u2265 0.05). Log scale; all panels share it.")


def _verdict_legend(fig, data: Data) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", linewidth=2.4, markeredgecolor="#222222",
                      label=lbl) for lbl, c in (("better", VERDICT_COLOURS["better"]),
                                                ("worse", VERDICT_COLOURS["worse"]),
                                                ("n.s.", verdict_colour("n.s.")))]
    if data.multi_run:
        handles += [Line2D([], [], color="#ffffff", marker=data.marker[s], markeredgecolor="#222222",
                           markerfacecolor="#bbbbbb", linestyle="none", label=mpl_text(s))
                    for s in data.series]
    fig.legend(handles=handles, loc="upper right", fontsize=8.5, framealpha=0.9,
               borderaxespad=0.6)
