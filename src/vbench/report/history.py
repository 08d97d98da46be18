"""History pages: per (workload, metric) the median of every variant over the runs of a scenario,
with change points marked, and the newest run's context strip on top."""

from __future__ import annotations

import math
from pathlib import Path

from vbench import __version__
from vbench.core import fmt
from vbench.core.errors import StoreError, UserError
from vbench.core.metrics import higher_is_better, metric_info, metric_label
from vbench.results.rundir import find_runs, load_samples
from vbench.core.files import atomic_write
from vbench.report import context
from vbench.report.data import is_baseline, metric_order
from vbench.report.draw import draw_all, fig_title, mpl_text, new_figure, png, title
from vbench.report.figures import ReportFigure
from vbench.report.load import RunInfo, read_record
from vbench.report.render import now, render
from vbench.report.palette import Palette

STYLES = ("-", "--", ":", "-.")


def _load(results_root: Path, scenario: str, warnings: list[str]):
    import pandas as pd

    paths = find_runs(results_root, scenario, warn=warnings.append)
    if not paths:
        raise UserError(f"no runs of scenario {scenario!r} under {results_root}; run it with "
                        f"`vbench run` or point --results at the right directory")
    runs, infos, frames = [], [], []
    for p in paths:
        try:
            rec, problems = read_record(p)
        except StoreError as exc:
            warnings.append(f"skipping {p}: {exc}")
            continue
        warnings.extend(f"{p.name}: {x}" for x in problems)
        info = RunInfo(path=p, label=p.name, record=rec)
        df = load_samples(p, warn=warnings.append)
        df["run_id"] = p.name
        df = df[df["scenario"].astype(str) == scenario] if len(df) else df
        frames.append(df)
        infos.append(info)
        runs.append({"label": p.name, "started": rec.started, "status": rec.status or "unknown",
                     "accelerator": info.accelerator, "badge": context.badge(info.accelerator),
                     "host": context.text(rec.environment.host), "n": int(len(df))})
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return runs, infos, df


def build_history(results_root: Path, scenario: str, out_dir: Path) -> Path:
    """Write ``out_dir/index.html``: per (workload, metric) the median of every variant over the
    runs of ``scenario`` in time order, with the change points found by
    :func:`vbench.stats.history.change_points` marked. Contexts (accelerator, host) are separate lines."""
    from vbench.stats import history, summary

    results_root, out_dir = Path(results_root), Path(out_dir)
    warnings: list[str] = []
    runs, infos, df = _load(results_root, scenario, warnings)
    order = [r["label"] for r in runs]
    figures: list[ReportFigure] = []
    change_rows: list[dict] = []
    if len(df):
        points, changes = history.history_table(
            df, run_order=order, run_dates={i.label: i.record.started for i in infos},
            environments={i.label: _facts(i.record) for i in infos})
        d = summary.prepare(df).drop_duplicates("variant").set_index("variant")
        palette = Palette([(v, bool(d.loc[v, "paravirtual"]), is_baseline(v, d.loc[v, "device"]),
                            d.loc[v, "device"]) for v in d.index])
        jobs = [(history_figure, (metric, points[points["metric"] == metric],
                                  changes[changes["metric"] == metric], order, palette))
                for metric in metric_order(points["metric"].unique())]
        npanels = len(points[["workload", "metric"]].drop_duplicates())
        figures = [f for f in draw_all(jobs, npanels) if f is not None]
        for x in changes.itertuples(index=False):
            change_rows.append({"workload": x.workload, "metric": metric_label(x.metric),
                                "variant": x.variant, "context": f"{x.accelerator} on {x.host}",
                                "run": x.run_id, "before": fmt.num(x.before), "after": fmt.num(x.after),
                                "unit": metric_info(x.metric).unit,
                                "step": fmt.change(x.step), "environment": x.environment,
                                "cls": "worse" if (x.step < 0) == higher_is_better(x.metric) else "better"})
    else:
        warnings.append("the runs hold no samples of this scenario")
    accels = sorted({r["accelerator"] for r in runs if r["accelerator"]})
    html = render("history.html.j2", title=f"vbench history: {scenario}", scenario=scenario,
                  generated=now(), version=__version__, runs=runs, figures=figures,
                  changes=change_rows, warnings=warnings, accelerators=accels,
                  strip=context.strip(infos[-1]) if infos else None,
                  tcg=any(a.lower() == "tcg" for a in accels), results_root=str(results_root))
    atomic_write(out_dir / "index.html", html)
    return out_dir / "index.html"


def _facts(rec) -> dict:
    """What changed between two runs is named from these (QEMU, libvirt, kernels, ...)."""
    from vbench.results.record import checked_metadata
    from vbench.stats.history import environment_facts

    derived = checked_metadata(rec)  # the facts a record holds outside its environment
    return environment_facts(rec.environment.model_dump(),
                             {k: derived[k] for k in ("guest_kernel", "probe_methods")})


def history_figure(metric: str, points, changes, order: list[str],
                   palette: Palette) -> ReportFigure | None:
    """One metric over the runs: a panel per workload, a line per variant (and context), change
    points marked; variants in the same colours as on the report pages."""
    if len(points) == 0:
        return None
    workloads = sorted(points["workload"].unique())
    fig, axes = new_figure(len(workloads), ncols=2, h=2.4, legend=True, sharex=True, left=0.9)
    split_ctx = len(points[["accelerator", "host"]].drop_duplicates()) > 1
    entries: dict[str, tuple] = {}
    contexts = sorted({(a, h) for a, h in zip(points["accelerator"], points["host"])})
    for ax, wl in zip(axes, workloads):
        grp = points[points["workload"] == wl]
        ch = changes[changes["workload"] == wl]
        for (variant, accel, host), line in grp.groupby(["variant", "accelerator", "host"], sort=True):
            colour = palette[variant]
            style = STYLES[contexts.index((accel, host)) % len(STYLES)]
            ax.fill_between(line["position"], line["ci_low"], line["ci_high"], color=colour,
                            alpha=0.15, linewidth=0)  # each run's 95 % interval
            ax.plot(line["position"], line["median"], marker="o", markersize=3, linewidth=1.4,
                    color=colour, linestyle=style)
            entries.setdefault(f"{variant} ({accel}, {host})" if split_ctx else variant, (colour, style))
            c = ch[(ch["variant"] == variant) & (ch["accelerator"] == accel) & (ch["host"] == host)]
            for pos, env in zip(c["position"], c["environment"]):
                ax.axvline(pos - 0.5, color=colour, linestyle="--", linewidth=1.0, alpha=0.8)
                if env:
                    ax.annotate(mpl_text(env if len(env) <= 48 else env[:47] + "\u2026"),
                                (pos - 0.45, 0.97), xycoords=("data", "axes fraction"),
                                fontsize=6, rotation=90, va="top", color="#444444")
                y = line.loc[line["position"] == pos, "median"]
                if len(y):
                    ax.plot([pos], [float(y.iloc[0])], marker="v", markersize=9, color="#d62728",
                            linestyle="none", zorder=5)
        title(ax, wl, 10)
        ax.set_ylabel(mpl_text(metric_info(metric).unit), fontsize=8)
        ax.grid(alpha=0.3)
    dates = dict(zip(points["run_id"], points["date"]))
    _run_axis(axes, [str(dates.get(r) or r)[:16].replace("T", " ") for r in order])
    from matplotlib.lines import Line2D

    fig.legend(handles=[Line2D([], [], color=c, linestyle=ls, marker="o", markersize=3,
                               label=mpl_text(lbl)) for lbl, (c, ls) in entries.items()],
               loc="upper right", fontsize=8, framealpha=0.9, borderaxespad=0.6)
    better = "higher is better" if higher_is_better(metric) else "lower is better"
    unit = metric_info(metric).unit
    fig_title(fig, f"{metric_label(metric)} [{unit}] over the runs ({better})")
    return ReportFigure(id=f"h-{context.slug(metric)}", title=f"{metric_label(metric)} over the runs",
                        src=png(fig), alt=f"History of {metric_label(metric)} per workload",
                        caption="Median per run by start date, oldest left, one panel per "
                                "workload; band: each run's 95% interval; dashed line and red "
                                "triangle: a step (a new level starts), labelled with what "
                                "changed in the environment between the two runs around it.")


def _run_axis(axes, order: list[str]) -> None:
    n = len(order)
    step = max(1, math.ceil(n / 16))
    ticks = list(range(0, n, step))
    for ax in axes:
        ax.set_xticks(ticks)
        ax.set_xticklabels([mpl_text(order[t][:22]) for t in ticks], rotation=30, ha="right",
                           fontsize=7)
        ax.set_xlim(-0.5, n - 0.5)
