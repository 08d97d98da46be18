"""The report's "VM exits per I/O" table: KVM's exit counts per operation next to QEMU's host CPU
per I/O, one row per run, workload and variant (medians of the repetitions).

Only KVM runs have exit rows; under TCG the table is left out. A number that is absent is shown
as a dash whose title says why (the run record keeps the reason per variant, see
``results.record.Variant.kvm_exits_absent``), never as 0.
"""

from __future__ import annotations

from typing import Any

from vbench.core import fmt
from vbench.core.metrics import KVM_EXIT_METRICS, metric_label
from vbench.report.data import Data
from vbench.report.load import RunInfo

CPU_METRIC = "host_cpu_per_io"
COLUMNS = (CPU_METRIC, *KVM_EXIT_METRICS)


def exit_table(data: Data, runs: list[RunInfo]) -> dict[str, Any] | None:
    """Header and rows of the table, with the reasons of absent numbers; None when no unit of
    these runs has an exit row or a reason for lacking one (TCG, or runs before issue 22)."""
    why = _absent(runs)
    s = data.summary[data.summary["metric"].isin(COLUMNS)]
    has_exits = s["metric"].isin(KVM_EXIT_METRICS).any()
    if not has_exits and not why:
        return None
    header = [{"label": metric_label(m), "unit": data.unit(m)} for m in COLUMNS]
    medians = {(x.run_id, x.scenario, x.workload, x.variant, x.metric): x.median
               for x in s.itertuples(index=False)}
    rows = []
    order = {r.label: i for i, r in enumerate(runs)}
    for run, scn, wl, variant in sorted({k[:4] for k in medians}, key=lambda k: (
            order.get(k[0], len(order)), k[1], k[2], data.variants.index(k[3])
            if k[3] in data.variants else len(data.variants))):
        cells = []
        for m in COLUMNS:
            value = medians.get((run, scn, wl, variant, m))
            cells.append({"text": fmt.num(value) if value is not None else "\u2014",
                          "title": "" if value is not None else
                          why.get((run, variant, m), "not measured")})
        rows.append({"run": run, "scenario": scn, "workload": wl, "variant": variant,
                     "cells": cells})
    notes = sorted({f"{v}: {metric_label(m)}: {text}" for (_, v, m), text in why.items()})
    return {"header": header, "rows": rows, "absent": notes}


def _absent(runs: list[RunInfo]) -> dict[tuple[str, str, str], str]:
    """(run, variant, metric) -> why that variant's units have no row of the exit metric."""
    return {(r.label, name, m): text for r in runs for name, v in r.variants.items()
            for m, text in (v.kvm_exits_absent or {}).items() if m in KVM_EXIT_METRICS}
