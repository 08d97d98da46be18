"""The end of ``vbench run`` in the terminal: the headline ratios with their verdicts."""

from __future__ import annotations

from pathlib import Path

from vbench.core import fmt
from vbench.core.metrics import metric_label
from vbench.report.data import metric_order, with_cpu_per_io
from vbench.report.forest import advantage
from vbench.report.tables import headline

VERDICT_MARK = {"better": "better", "worse": "WORSE", "n.s.": "n.s."}


def headline_lines(run_path: Path) -> list[str]:
    """Paravirtual vs emulated for the headline metrics of a stored run: a table (ratio of
    medians, its 95 % interval, the advantage, the verdict) and one line that sums it up."""
    from vbench.stats import summary
    from vbench.results.rundir import load_samples
    from vbench.stats.summary import pair_words, references_of
    from vbench.report.load import read_record

    df = load_samples(Path(run_path))
    if len(df) == 0:
        return []
    refs = references_of([read_record(Path(run_path))[0]])
    r = headline(summary.ratios(with_cpu_per_io(summary.prepare(df)), references=refs))
    if len(r) == 0:
        return []
    pv, emu = pair_words(refs)
    table = [("workload", "metric", f"{pv} vs {emu}", "ratio", "95% CI", "advantage",
              "verdict")]
    order = {m: i for i, m in enumerate(metric_order(r["metric"].unique()))}
    r = r.assign(_m=r["metric"].map(order))
    for x in r.sort_values(["workload", "_m", "variant", "reference"], kind="stable").itertuples(
            index=False):
        adv = advantage(x.ratio, x.ci_low, x.ci_high, bool(x.higher_is_better))[0]
        table.append((str(x.workload), metric_label(x.metric), f"{x.variant} vs {x.reference}",
                      fmt.ratio(x.ratio), fmt.interval(x.ci_low, x.ci_high, fmt.ratio),
                      fmt.ratio(adv), VERDICT_MARK.get(x.verdict, x.verdict)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    counts = r["verdict"].value_counts()
    lines.append(f"{pv} better in {counts.get('better', 0)} of {len(r)}, worse in "
                 f"{counts.get('worse', 0)}, no significant difference in "
                 f"{len(r) - counts.get('better', 0) - counts.get('worse', 0)} "
                 f"(advantage > 1x = {pv} better; ratio = {pv} / {emu})")
    if set(r["accelerator"].astype(str).str.lower()) == {"tcg"}:
        lines.append("measured under TCG: the guest CPU is saturated, these ratios are TCG's, "
                     "not KVM's")
    return ["", f"{pv.capitalize()} vs {emu} (headline metrics):"] + lines
