"""The report page: everything from the results store, rendered with Jinja2 into one HTML file.

The page carries its CSS inline and a Content-Security-Policy that forbids every fetch except
``data:`` images, so it opens from ``file://`` offline and cannot run a script even if one slipped
into a scenario text; all text from scenarios, runs and guests goes through autoescaping. Next to
``index.html`` the headline forest plot is written as ``headline-ratios.png`` (for CI summaries
and wikis) and each variant's domain XML under ``domain-xml/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vbench import __version__
from vbench.core.errors import UserError
from vbench.core.files import atomic_write
from vbench.report import context
from vbench.report.data import Data
from vbench.report.draw import draw_all
from vbench.report.exits import exit_table
from vbench.report.figures import REGISTRY, ReportFigure
from vbench.report.forest import forest_figure
from vbench.report.load import RunInfo, load_runs
from vbench.report.render import now, render
from vbench.report.tables import FLAG_TEXT, Flags, headline, host_rows, ratio_rows, summary_rows

HEADLINE_PNG = "headline-ratios.png"
SECTIONS = ("forest",) + tuple(dict.fromkeys(k.section for k in REGISTRY))


def draw_figures(data: Data) -> dict[str, list[ReportFigure]]:
    """Every registered figure kind's figures plus the two forest plots, drawn (in parallel when
    the page is big) and grouped by page section."""
    jobs = [(forest_figure, (data, headline(data.ratios)))]
    sections = ["forest"]
    for kind in REGISTRY:
        for args in kind.tasks(data):
            jobs.append((kind.draw, (data, *args)))
            sections.append(kind.section)
    npanels = len(data.summary[["scenario", "workload", "metric"]].drop_duplicates())
    out: dict[str, list[ReportFigure]] = {s: [] for s in SECTIONS}
    for section, fig in zip(sections, draw_all(jobs, npanels)):
        if fig is not None:
            out[section].append(fig)
    return out


def _tcg_runs(runs: list[RunInfo], df) -> list[str]:
    tcg = [r.label for r in runs if r.accelerator.lower() == "tcg"]
    if len(df):
        tcg += sorted(set(df.loc[df["accelerator"].astype(str).str.lower() == "tcg", "run_id"])
                      - set(tcg))
    return tcg


def _analysed(data: Data, runs: list[RunInfo], warnings: list[str]) -> dict:
    from vbench.stats import summary

    order = [r.label for r in runs]
    flags = Flags(data, runs, summary.NOISY_CV)
    figures = draw_figures(data)
    if flags.counts.get("noisy"):
        warnings.append(f"{flags.counts['noisy']} of {len(data.summary)} groups are noisy "
                        f"(coefficient of variation above {summary.NOISY_CV:.0%}); flagged next to "
                        f"their numbers")
    head = headline(data.ratios)
    return {"contexts": summary.contexts(data.df), "scenarios": data.scenarios,
            "headline": ratio_rows(head, flags, order, data.unit),
            "all_ratios": ratio_rows(data.ratios, flags, order, data.unit),
            "summary": summary_rows(data, flags, order), "host_rows": host_rows(data, flags, order),
            "figures": figures,
            "flag_summary": [{"kind": k, "text": FLAG_TEXT[k][0], "title": FLAG_TEXT[k][1], "n": n}
                             for k, n in sorted(flags.counts.items())],
            "has_entropy_avail": "entropy_avail" in data.metrics,
            "exits": exit_table(data, runs),
            **pair_words(data)}


def pair_words(data: Data) -> dict[str, str]:
    """What the two sides of a headline ratio are called: paravirtual/emulated, or, when a
    scenario declares its own ``reference:`` variant, variant/reference."""
    from vbench.stats.summary import pair_words as words

    pv, emu = words(data.references)
    return {"pv_word": pv, "emu_word": emu,
            "ref_names": ", ".join(sorted(set(data.references.values())))}


def build_report(run_paths: list[Path], out_dir: Path, title: str | None = None,
                 history_root: Path | None = None, labels: list[str] | None = None) -> Path:
    """Write ``out_dir/index.html`` for one or more runs (side by side) and return its path.

    ``labels`` names the runs on the page instead of their directory names (a fleet's hosts).

    With ``history_root`` (a results root), history pages of the runs' scenarios are written under
    ``out_dir/history/<scenario>/`` and linked.
    """
    from vbench.report.history import build_history

    out_dir = Path(out_dir)
    warnings: list[str] = []
    runs, df = load_runs(run_paths, warnings, labels)
    views = [context.run_view(r) for r in runs]
    page: dict[str, Any] = {
        "contexts": [], "scenarios": [], "headline": [], "all_ratios": [], "summary": [],
        "host_rows": [], "figures": {s: [] for s in SECTIONS}, "flag_summary": [],
        "has_entropy_avail": False, "exits": None, "pv_word": "paravirtual", "emu_word": "emulated",
        "ref_names": ""}
    if len(df):
        page.update(_analysed(Data(df, runs), runs, warnings))
    else:
        warnings.append("no samples in these runs: nothing to plot")
    forest = page["figures"]["forest"]
    if forest:
        atomic_write(out_dir / HEADLINE_PNG, forest[0].png)
    context.write_domain_xml(out_dir, runs)
    scenarios = page["scenarios"] or sorted({v["scenario_name"] for v in views if v["scenario_name"]})
    history_links = []
    if history_root is not None:
        for scn in scenarios:
            try:
                build_history(history_root, scn, out_dir / "history" / context.slug(scn))
                history_links.append({"scenario": scn,
                                      "href": f"history/{context.slug(scn)}/index.html"})
            except UserError as exc:
                warnings.append(f"no history for {scn}: {exc}")
    if title is None:
        title = "vbench: " + ", ".join(scenarios or ["report"]) + " \u2014 " + ", ".join(
            r.label for r in runs[:4]) + (" \u2026" if len(runs) > 4 else "")
    contexts = page.pop("contexts")
    html = render(
        "report.html.j2", title=title, generated=now(), version=__version__, runs=views,
        tcg_runs=_tcg_runs(runs, df), contexts=[f"{a} on {h}" for a, h in contexts],
        mixed=len(contexts) > 1, warnings=warnings, history_links=history_links,
        multi_run=len(runs) > 1, env_diff=context.env_diff(runs) if len(runs) > 1 else None,
        headline_png=HEADLINE_PNG if forest else "",
        incomplete=[v for v in views if v["status"] != "complete"], **page)
    atomic_write(out_dir / "index.html", html)
    return out_dir / "index.html"
