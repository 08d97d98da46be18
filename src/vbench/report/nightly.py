"""The nightly job's helpers: which runs are the baselines, the Markdown job summary, one JUnit file.

``scripts/nightly.sh`` drives the night (run, compare against the previous run and the known-good
run, report); this module holds the parts of it worth unit-testing. It is run as
``python -m vbench.report.nightly ACTION ...`` so that the shell script needs no inline Python:

* ``previous RESULTS NEW``: the newest complete run of NEW's scenario started before NEW;
* ``summary --run NEW --compare LABEL=JSON ... [--markdown FILE] [--junit FILE]``: the Markdown
  summary (verdict table per baseline, headline virtio/emulated ratios of the new run) and one
  JUnit file with a test suite per baseline.

Reads only what ``vbench compare --json`` and the run directory hold; writes only the files named.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from vbench.core import fmt
from vbench.core.policy import VERDICTS, fails_gate
from vbench.workloads.base import stored_names

# Older compare JSON named some verdicts differently: their current names.
OLD_NAMES = {"regressed": "regression", "noisy": "inconclusive", "insufficient": "inconclusive",
             "improved": "improvement"}
SEVERITY = VERDICTS
MAX_ROWS = 60


def _meta(run: Path) -> dict | None:
    """The run's record (versioned and checked like every read of a run), or None."""
    from vbench.core.errors import StoreError
    from vbench.results.rundir import load_meta

    try:
        return load_meta(run)
    except (StoreError, OSError):
        return None


def previous_run(results: Path, new: Path) -> Path | None:
    """The newest complete run of the same scenario as ``new`` that started before it (the runs
    as :func:`vbench.results.rundir.find_runs` lists them, oldest first)."""
    from vbench.results.rundir import find_runs

    m_new = _meta(new) or {}
    name = (m_new.get("scenario") or {}).get("name")
    started = str(m_new.get("started") or "")
    if not name:
        return None
    best = None
    for d in find_runs(results, name):
        m = _meta(d)
        if not m or d.resolve() == new.resolve() or m.get("status") != "complete":
            continue
        if started and str(m.get("started") or "") >= started:
            continue
        best = d
    return best


# ---- Markdown ----------------------------------------------------------------------------------

def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _status(row: dict) -> str:
    status = str(row.get("status") or row.get("verdict") or "")
    return OLD_NAMES.get(status, status)


def _centre(row: dict, side: str):
    """What the change is computed from (older compare JSON: the median)."""
    value = row.get(f"centre_{side}")
    return row.get(f"median_{side}") if value is None else value


def _fails(cmp: dict, row: dict) -> bool:
    """Whether this row fails the compare's gate, with the compare's own --allow-inconclusive."""
    allow = not (cmp.get("gate") or {}).get("fail_inconclusive", True)
    return bool(row.get("gated", True)) and fails_gate(_status(row), allow)


def _sorted_rows(rows: list[dict]) -> list[dict]:
    order = {s: i for i, s in enumerate(SEVERITY)}
    return sorted(rows, key=lambda r: (order.get(_status(r), len(order)), str(r.get("workload")),
                                       str(r.get("metric")), str(r.get("variant"))))


def verdict_markdown(label: str, cmp: dict) -> list[str]:
    """One baseline's verdicts: counts, then a table (gated rows when the compare marks them)."""
    rows = list(cmp.get("rows") or [])
    gated = [r for r in rows if r.get("gated")]
    shown = gated if gated else rows
    counts: dict[str, int] = {}
    for r in rows:
        counts[_status(r)] = counts.get(_status(r), 0) + 1
    base = ", ".join(cmp.get("base_runs") or []) or "?"
    out = [f"#### against the {label} run `{base}`", ""]
    failing = {_status(r) for r in shown if _fails(cmp, r)}
    out.append(", ".join(f"**{n} {s}**" if s in failing else f"{n} {s}"
                         for s, n in sorted(counts.items(), key=lambda kv: (
                             SEVERITY.index(kv[0]) if kv[0] in SEVERITY else 99)))
               + (f" ({len(gated)} gated rows shown)" if gated else f" ({len(rows)} rows)"))
    message = (cmp.get("gate") or {}).get("message")
    if message:
        out += ["", _cell(message)]
    out.append("")
    out.append("| verdict | workload | variant | metric | base (geo. mean) | new (geo. mean) | change "
               "| 95 % interval |")
    out.append("|---|---|---|---|---:|---:|---:|---|")
    srt = _sorted_rows(shown)
    for r in srt[:MAX_ROWS]:
        st = _status(r)
        mark = f"**{st}**" if _fails(cmp, r) else st
        out.append(f"| {mark} | {_cell(r.get('workload'))} | {_cell(r.get('variant'))} | "
                   f"{_cell(r.get('metric'))} | {fmt.num(_centre(r, 'base'))} | "
                   f"{fmt.num(_centre(r, 'new'))} | {fmt.change(r.get('change'))} | "
                   f"{fmt.interval(r.get('ci_low'), r.get('ci_high'), fmt.change)} |")
    if len(srt) > MAX_ROWS:
        out.append(f"\n… and {len(srt) - MAX_ROWS} more rows in the compare JSON.")
    out.append("")
    return out


def headline_ratios(run: Path) -> list[tuple[str, str, str, float, float, float]]:
    """(workload, metric, 'virtio vs emulated', ratio, ci_low, ci_high) on each workload's headline
    metric of one run (the number the report leads with)."""
    from vbench.stats import summary
    from vbench.run.session import headline_metric
    from vbench.scenario.schema import load_scenario_text
    from vbench.results.rundir import load_samples

    meta = _meta(run) or {}
    try:
        scn = load_scenario_text((meta.get("scenario") or {}).get("text") or "", where=str(run))
    except Exception:
        return []
    wanted = {}
    for w in scn.workloads:
        m = headline_metric(w)
        for name in stored_names(w.name):
            wanted[name] = m
    df = load_samples(run)
    df = df[[wanted.get(w) == m for w, m in zip(df["workload"], df["metric"])]]
    if len(df) == 0:
        return []
    r = summary.ratios(df, references={scn.name: scn.reference} if scn.reference else None)
    return [(row.workload, row.metric, f"{row.variant} vs {row.reference}", row.ratio, row.ci_low,
             row.ci_high) for row in r.itertuples(index=False)]


def summary_markdown(new: Path, compares: list[tuple[str, dict | None]], status_line: str,
                     ratios: list[tuple] | None = None) -> str:
    meta = _meta(new) or {}
    env = meta.get("environment") or {}
    out = [f"### vbench nightly: {status_line}", "",
           f"Run `{new.name}` of scenario **{(meta.get('scenario') or {}).get('name', '?')}** "
           f"({meta.get('status', '?')}, {meta.get('repetitions', '?')} repetitions, "
           f"{str(env.get('accelerator', '?')).upper()} on {env.get('host', '?')}, "
           f"{env.get('qemu_version', 'QEMU ?')}).", ""]
    failures = meta.get("failures") or []
    if failures:
        out += [f"{len(failures)} failed repetition(s) are recorded in run.json.", ""]
    if ratios:
        out += ["#### headline ratios of this run", "",
                "| workload | metric | variants | ratio | 95 % interval |", "|---|---|---|---:|---|"]
        for wl, metric, pair, ratio, lo, hi in ratios:
            out.append(f"| {_cell(wl)} | {_cell(metric)} | {_cell(pair)} | {fmt.ratio(ratio)} | "
                       f"{fmt.interval(lo, hi, fmt.ratio)} |")
        out.append("")
    for label, cmp in compares:
        if cmp is None:
            out += [f"#### against the {label} run", "", "no comparison (see the job log)", ""]
        else:
            out += verdict_markdown(label, cmp)
    if not compares:
        out += ["No baseline run exists yet: nothing was compared.", ""]
    return "\n".join(out)


# ---- JUnit -------------------------------------------------------------------------------------

def merge_junit(files: list[tuple[str, Path]]) -> str:
    """One ``<testsuites>`` document with each compare's suite renamed after its baseline."""
    root = ET.Element("testsuites", name="vbench.report.nightly")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for label, path in files:
        try:
            suite = ET.parse(path).getroot()
        except (OSError, ET.ParseError):
            continue
        suites = [suite] if suite.tag == "testsuite" else list(suite.iter("testsuite"))
        for s in suites:
            s.set("name", f"{s.get('name', 'vbench.compare')}.{label}")
            for case in s.iter("testcase"):
                case.set("classname", f"{label}.{case.get('classname', '')}")
            for k in totals:
                totals[k] += int(s.get(k, "0") or 0)
            root.append(s)
    for k, v in totals.items():
        root.set(k, str(v))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# ---- command line --------------------------------------------------------------------------------

def _load_json(path: Path) -> dict | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vbench.report.nightly")
    sub = p.add_subparsers(dest="action", required=True)
    sp = sub.add_parser("previous", help="print the previous complete run of NEW's scenario")
    sp.add_argument("results", type=Path)
    sp.add_argument("new", type=Path)
    sp = sub.add_parser("summary", help="Markdown summary and merged JUnit of one night")
    sp.add_argument("--run", type=Path, required=True)
    sp.add_argument("--compare", action="append", default=[], metavar="LABEL=JSON")
    sp.add_argument("--junit-in", action="append", default=[], metavar="LABEL=XML")
    sp.add_argument("--status", default="", help="the verdict line (e.g. 'gate passed')")
    sp.add_argument("--markdown", type=Path)
    sp.add_argument("--junit", type=Path)
    args = p.parse_args(argv)
    if args.action == "previous":
        prev = previous_run(args.results, args.new)
        print(prev or "")
        return 0
    compares = []
    for item in args.compare:
        label, _, path = item.partition("=")
        compares.append((label, _load_json(Path(path))))
    try:
        ratios = headline_ratios(args.run)
    except Exception as exc:  # the summary must not fail the night over a ratio
        print(f"nightly: headline ratios not computed: {type(exc).__name__}: {exc}", file=sys.stderr)
        ratios = []
    md = summary_markdown(args.run, compares, args.status, ratios)
    if args.markdown:
        args.markdown.write_text(md)
    else:
        print(md)
    if args.junit:
        files = []
        for item in args.junit_in:
            label, _, path = item.partition("=")
            files.append((label, Path(path)))
        args.junit.write_text(merge_junit(files))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
