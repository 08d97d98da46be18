"""The `report`, `compare` and `history` subcommands.

Only argument parsing and printing live here; the numbers come from :mod:`vbench.analysis` and the
pages from :mod:`vbench.report`, both imported when a command runs so that ``vbench --help`` does
not pay for pandas, scipy or matplotlib. Errors are raised as :class:`vbench.core.errors.UserError`
(the CLI prints them as one line); ``compare`` raises :class:`vbench.core.errors.RegressionFound`
(exit status 1) after printing its table and writing its files when a regression is found.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from vbench.core.errors import ExitStatus, RegressionFound, UserError
from vbench.commands import publish as store

if TYPE_CHECKING:  # pragma: no cover
    from vbench.stats.compare import Gate

_THRESHOLD = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*=\s*([0-9]*\.?[0-9]+)\s*(%?)\s*$")


def add_parsers(subparsers) -> None:
    """Add ``report``, ``compare`` and ``history`` to the CLI's subparsers."""
    sp = subparsers.add_parser(
        "report", help="write a self-contained HTML report of one or more runs",
        description="Build reports/<run>/index.html from stored results (no VM needed). Several "
                    "runs are shown side by side.")
    sp.add_argument("runs", nargs="+", metavar="RUN", help="run directory (results/<run id>)")
    sp.add_argument("--out", metavar="DIR",
                    help="output directory (default: reports/<run id>, or reports/combined-... "
                         "for several runs)")
    sp.add_argument("--title", metavar="T", help="page title")
    sp.add_argument("--history", metavar="RESULTS", dest="history_root",
                    help="also write history pages of the runs' scenarios from this results root "
                         "and link them")
    store.add_store_option(sp)
    sp.set_defaults(func=cmd_report)

    _add_compare(subparsers)

    sp = subparsers.add_parser(
        "history", help="trend page of a scenario over all its runs, with change points",
        description="Median per run of every workload, metric and variant of a scenario, oldest "
                    "first, with change points marked.")
    sp.add_argument("scenario", metavar="SCENARIO",
                    help="scenario name (as in run.json), or its YAML file")
    sp.add_argument("--results", default=os.environ.get("VBENCH_RESULTS", "results"), metavar="DIR",
                    help="results root (default: ./results)")
    sp.add_argument("--out", metavar="DIR", help="output directory (default: reports/history-<scenario>)")
    store.add_store_option(sp)
    sp.set_defaults(func=cmd_history)


def _add_compare(subparsers) -> None:
    sp = subparsers.add_parser(
        "compare", help="compare a new run against a base run; exit 1 when the gate fails",
        description="Per (workload, metric, variant): change of the median (Welch's t on logs), "
                    "95%% interval, p-value and the smallest change the row could detect; "
                    "verdict regression, improvement, unchanged (the whole interval within the "
                    "threshold) or inconclusive. Only the gated metrics (the scenario's `gate:`) "
                    "can fail: on a regression, or on an inconclusive row unless "
                    "--allow-inconclusive.")
    sp.add_argument("base", metavar="BASE", help="base run directory")
    sp.add_argument("new", metavar="NEW", help="new run directory")
    sp.add_argument("--threshold", action="append", default=[], metavar="METRIC=FRAC",
                    help="per-metric threshold, e.g. iops=0.05 or clat_p99=10%% (repeatable)")
    sp.add_argument("--abs-threshold", action="append", default=[], metavar="METRIC=VALUE",
                    help="per-metric absolute threshold in the metric's unit, e.g. loss=0.5 "
                         "(percentage points; repeatable); loss and retransmits have defaults")
    sp.add_argument("--default-threshold", type=_fraction, default=None, metavar="F",
                    help="threshold for metrics without their own (default: the scenario's "
                         "gate.threshold, else 0.05 = 5%%)")
    sp.add_argument("--alpha", type=_alpha, default=0.05, metavar="A",
                    help="significance level (default: 0.05)")
    sp.add_argument("--correction", choices=("bh", "holm", "none"), default="bh",
                    help="multiple-testing adjustment within the gated family (default: bh = "
                         "Benjamini-Hochberg; holm = Holm-Bonferroni)")
    sp.add_argument("--gate", metavar="METRICS",
                    help="comma-separated metrics to gate (default: the scenario's gate.metrics, "
                         "else the primary metric of each device kind)")
    sp.add_argument("--allow-inconclusive", action="store_true",
                    help="pass the gate when gated rows are inconclusive (the data cannot rule out "
                         "a change beyond the threshold); regressions still fail")
    sp.add_argument("--json", metavar="FILE", help="write the comparison as JSON")
    sp.add_argument("--junit", metavar="FILE", help="write the comparison as JUnit XML")
    sp.add_argument("--allow-mixed", action="store_true",
                    help="compare even if the runs were measured under different accelerators "
                         "or on different hosts")
    store.add_store_option(sp)
    sp.set_defaults(func=cmd_compare)


# ---- argument types -------------------------------------------------------------------------------

def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.05 or 5%, got {text!r}")
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.05 or 5%, got {text!r}")
    return value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def parse_abs_thresholds(items: list[str]) -> dict[str, float]:
    """``["loss=0.5"]`` -> ``{"loss": 0.5}`` (absolute, in the metric's unit)."""
    out: dict[str, float] = {}
    for item in items:
        m = _THRESHOLD.match(item)
        if not m or m.group(3):
            raise UserError(f"--abs-threshold {item!r}: expected METRIC=NUMBER in the metric's "
                            f"unit, e.g. loss=0.5")
        out[m.group(1)] = float(m.group(2))
    return out


def scenario_gate(meta: dict, warn: Callable[[str], None]) -> tuple[Gate, float | None]:
    """(Gate, threshold) from the ``gate:`` of the scenario text a run recorded."""
    import yaml
    from pydantic import ValidationError

    from vbench.stats.compare import Gate
    from vbench.scenario.schema import GateSpec, format_validation_error

    text = (meta.get("scenario") or {}).get("text") if isinstance(meta, dict) else None
    try:
        doc = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError:
        doc = None
    spec = doc.get("gate") if isinstance(doc, dict) else None
    if spec is None:
        return Gate(), None
    try:
        gs = GateSpec.model_validate(spec)
    except ValidationError as exc:
        warn(f"{format_validation_error(exc, 'gate of the new run')}; using the default gate")
        return Gate(), None
    return Gate.from_spec(gs), gs.threshold


def parse_thresholds(items: list[str]) -> dict[str, float]:
    """``["iops=0.05", "clat_p99=10%"]`` -> ``{"iops": 0.05, "clat_p99": 0.1}``."""
    out: dict[str, float] = {}
    for item in items:
        m = _THRESHOLD.match(item)
        if not m:
            raise UserError(f"--threshold {item!r}: expected METRIC=FRACTION, e.g. iops=0.05 or "
                            f"clat_p99=10%")
        value = float(m.group(2)) / (100.0 if m.group(3) else 1.0)
        if value >= 10:
            raise UserError(f"--threshold {item!r}: {value} is not a fraction; write 0.05 or 5% "
                            f"for five percent")
        out[m.group(1)] = value
    return out


def _run_dir(text: str) -> Path:
    path = Path(text)
    if not (path / "run.json").is_file():
        hint = ""
        if path.is_dir() and any((p / "run.json").is_file() for p in path.iterdir() if p.is_dir()):
            hint = " (it is a results root; pass one of the run directories inside it)"
        raise UserError(f"{path} is not a run directory{hint}; pass results/<run id>")
    return path


# ---- commands -------------------------------------------------------------------------------------

def default_report_dir(runs: list[Path], root: Path = Path("reports")) -> Path:
    if len(runs) == 1:
        return root / runs[0].resolve().name
    return root / f"combined-{len(runs)}-runs-{runs[-1].resolve().name}"


def cmd_report(args) -> ExitStatus:
    if getattr(args, "store", None):
        return store.report_from_store(args, cmd_report)
    from vbench.report import build_report

    runs = [_run_dir(r) for r in args.runs]
    out = Path(args.out) if args.out else default_report_dir(runs)
    page = build_report(runs, out, title=args.title,
                        history_root=Path(args.history_root) if args.history_root else None)
    print(f"report: {page}")
    return ExitStatus.SUCCESS


def _compare_gate(args: argparse.Namespace, meta: dict,
                  warn: Callable[[str], None]) -> tuple[Gate, float]:
    """The gate (scenario's, or --gate's metrics) and the default threshold of a compare."""
    from vbench.stats.compare import DEFAULT_THRESHOLD, Gate

    gate, gate_threshold = scenario_gate(meta, warn)
    if args.gate:
        gate = Gate(tuple(m.strip() for m in args.gate.split(",") if m.strip()), gate.variants,
                    gate.workloads)
    if args.default_threshold is not None:
        return gate, args.default_threshold
    return gate, gate_threshold or DEFAULT_THRESHOLD


def cmd_compare(args) -> ExitStatus:
    if getattr(args, "store", None):
        return store.compare_from_store(args, cmd_compare)
    from vbench.stats import compare
    from vbench.results.rundir import atomic_write, load_meta, load_samples

    thresholds = parse_thresholds(args.threshold)
    abs_thresholds = parse_abs_thresholds(args.abs_threshold)
    base, new = _run_dir(args.base), _run_dir(args.new)
    warnings: list[str] = []
    base_df = load_samples(base, warn=warnings.append)
    new_df = load_samples(new, warn=warnings.append)
    present = set(base_df["metric"]) | set(new_df["metric"])
    for metric in sorted((set(thresholds) | set(abs_thresholds)) - present):
        warnings.append(f"--threshold {metric}=...: no metric {metric!r} in these runs (metrics: "
                        f"{', '.join(sorted(present)) or 'none'})")
    gate, default = _compare_gate(args, load_meta(new), warnings.append)
    for w in warnings:
        print(f"warning: {w}")
    for label, path in (("base", base), ("new", new)):
        status = load_meta(path).get("status")
        if status and status != "complete":
            print(f"warning: the {label} run {path.name} is {status}; its numbers may be partial")
    result = compare.compare(base_df, new_df, thresholds=thresholds, abs_thresholds=abs_thresholds,
                              default_threshold=default, alpha=args.alpha,
                              allow_mixed=args.allow_mixed, correction=args.correction, gate=gate,
                              fail_inconclusive=not args.allow_inconclusive)
    print(f"compare: base {base.name} -> new {new.name}")
    print(result.to_text())
    for path, text, label in ((args.json, result.to_json, "json"),
                              (args.junit, result.to_junit, "junit")):
        if path:
            atomic_write(Path(path), text())
            print(f"{label}: {path}")
    if result.gate_failed:
        t = result.table
        failing = t[t["gated"] & t["status"].isin(["regression", "inconclusive"])]
        worst = ", ".join(f"{r.status} {r.metric} of {r.workload} on {r.variant}"
                          for r in failing.head(3).itertuples(index=False))
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        raise RegressionFound(f"{result.gate_message()}: {worst}{more}")
    return ExitStatus.SUCCESS


def cmd_history(args) -> ExitStatus:
    if getattr(args, "store", None):
        return store.history_from_store(args, cmd_history)
    from vbench.report import build_history

    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"results root {results} does not exist; pass --results DIR")
    scenario = args.scenario
    if scenario.endswith((".yaml", ".yml")):
        scenario = _scenario_name(results, Path(scenario))
    out = Path(args.out) if args.out else Path("reports") / f"history-{_safe(scenario)}"
    page = build_history(results, scenario, out)
    print(f"history: {page}")
    return ExitStatus.SUCCESS


def _scenario_name(results: Path, file: Path) -> str:
    """The scenario name of runs made from ``file`` (the newest such run), else the file's stem."""
    from vbench.results.rundir import find_runs, load_meta

    target = file.resolve() if file.exists() else None
    name = file.stem
    for run in find_runs(results):
        try:
            scn = load_meta(run).get("scenario") or {}
        except UserError:
            continue
        recorded = scn.get("file")
        if recorded and (Path(recorded) == file or (target and Path(recorded).resolve() == target)):
            name = scn.get("name") or name
    return name


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "scenario"
