"""Hosts side by side: per (workload, metric, device pair) the paravirtual/emulated ratio of each
host, with its 95 % interval and verdict, in one column per host.

The ratios are :func:`vbench.stats.summary.ratios` of each host's own run (never pooled across hosts:
each host is its own run and its own context); the headline metrics by default, as the run's own
terminal summary shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from vbench.core import fmt
from vbench.core.errors import UserError
from vbench.core.metrics import metric_label


def host_ratios(runs: Sequence[tuple[str, Path]], everything: bool = False, warn=None):
    """Ratios (rows of :func:`vbench.stats.summary.ratios`, by run) with ``run_id`` = the host name."""
    import pandas as pd

    from vbench.stats import summary
    from vbench.report.data import with_cpu_per_io
    from vbench.report.tables import headline
    from vbench.results.rundir import load_samples

    frames = []
    for name, path in runs:
        df = load_samples(path, warn=warn)
        if len(df):
            frames.append(df.assign(run_id=name))
        elif warn:
            warn(f"{name}: no samples in {path}")
    if not frames:
        raise UserError("no host of this fleet has samples to compare")
    r = summary.ratios(with_cpu_per_io(summary.prepare(pd.concat(frames, ignore_index=True))),
                        by_run=True)
    return r if everything else headline(r)


def cell(x) -> str:
    return (f"{fmt.ratio(x.ratio)} {fmt.interval(x.ci_low, x.ci_high, fmt.ratio)} "
            f"{x.verdict}")


def side_by_side(ratios, hosts: Sequence[str]) -> tuple[list[str], list[tuple[str, ...]]]:
    """(header, rows): one row per (workload, metric, pair), one column per host ('-': none)."""
    from vbench.report.data import metric_order

    order = {m: i for i, m in enumerate(metric_order(ratios["metric"].unique()))}
    cells: dict[tuple[str, str, str], dict[str, str]] = {}
    for x in ratios.itertuples(index=False):
        key = (str(x.workload), str(x.metric), f"{x.variant} / {x.reference}")
        cells.setdefault(key, {})[str(x.run_id)] = cell(x)
    keys = sorted(cells, key=lambda k: (k[0], order.get(k[1], 99), k[1], k[2]))
    header = ["workload", "metric", "paravirtual / emulated", *hosts]
    rows = [(wl, metric_label(m), pair, *(cells[(wl, m, pair)].get(h, "-") for h in hosts))
            for wl, m, pair in keys]
    return header, rows


def to_json(ratios) -> list[dict]:
    cols = ["run_id", "scenario", "workload", "metric", "variant", "reference", "accelerator",
            "host", "ratio", "ci_low", "ci_high", "p_value", "verdict", "n", "n_reference"]
    out = []
    for row in ratios[cols].itertuples(index=False):
        d = dict(zip(cols, row))
        d["fleet_host"] = d.pop("run_id")
        d = {k: (v.item() if hasattr(v, "item") else v) for k, v in d.items()}
        out.append({k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()})
    return out
