"""The `report`, `compare` and `history` subcommands.

Only argument parsing and printing live here; the numbers come from :mod:`vbench.stats` and the
pages from :mod:`vbench.report`, both imported when a command runs so that ``vbench --help`` does
not pay for pandas, scipy or matplotlib. Errors are raised as :class:`vbench.core.errors.UserError`
(the CLI prints them as one line); ``compare`` raises :class:`vbench.core.errors.RegressionFound`
(exit status 1) after printing its table and writing its files when a regression is found.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from vbench.core.errors import ExitStatus, RegressionFound, UserError
from vbench.results.rundir import is_run_dir
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
    store.add_store_option(sp, scenario=True)
    sp.set_defaults(func=cmd_history)


def _add_compare(subparsers) -> None:
    sp = subparsers.add_parser(
        "compare", help="compare a new run against a base run; exit 1 when the gate fails",
        description="Per (workload, metric, variant): the change of the geometric mean "
                    "(Welch's t on logs), its 95% interval, p-value and the smallest change the "
                    "row could detect. A regression is a significant change (adjusted p < alpha) "
                    "whose whole 90% interval lies beyond the threshold; unchanged: the 90% "
                    "interval lies within +-threshold (TOST at alpha 0.05); otherwise "
                    "inconclusive. Only the "
                    "gated metrics (the scenario's `gate:`) can fail: on a regression, a gated "
                    "row missing on one side, or an inconclusive row unless "
                    "--allow-inconclusive.")
    sp.add_argument("base", metavar="BASE", help="base run directory")
    sp.add_argument("new", metavar="NEW", help="new run directory")
    sp.add_argument("--threshold", action="append", default=[], metavar="METRIC=FRAC",
                    help="per-metric threshold, e.g. iops=0.05 or clat_p99=10%% (repeatable; a "
                         "fraction in (0, 1) or a percentage in (0, 100%%))")
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
    sp.add_argument("--json", metavar="FILE",
                    help="write the comparison as JSON (- for stdout; the table then goes to "
                         "stderr)")
    sp.add_argument("--junit", metavar="FILE", help="write the comparison as JUnit XML (- for "
                                                    "stdout)")
    sp.add_argument("--allow-mixed", action="store_true",
                    help="compare even if the runs differ in a checked environment fact "
                         "(accelerator, host, CPU, kernel, QEMU, libvirt, guest kernel or image) "
                         "or are runs of different scenarios")
    sp.add_argument("--between-run", default="auto", metavar="SD|auto|none",
                    help="run-to-run log sd added to each relative interval (two separate runs "
                         "differ by more than their repetitions say): auto (default) estimates it "
                         "from the earlier runs of the scenario next to NEW with the same checked "
                         "environment, or 2%% until there are 5 of them; none: within-run only")
    sp.add_argument("--allow-incomplete", action="store_true",
                    help="let the gate pass although a run is not complete (its missing gated "
                         "rows still fail it)")
    store.add_store_option(sp)
    sp.set_defaults(func=cmd_compare)


# ---- argument types -------------------------------------------------------------------------------

def threshold_value(text: str) -> float | None:
    """"0.05" or "5%" -> 0.05; None unless the value is a fraction in (0, 1) or a percentage in
    (0, 100 %): a bare 5 is refused rather than read as 500 % (or as 5 %)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", text)
    if not m:
        return None
    value = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    return value if 0 < value < 1 else None


def _fraction(text: str) -> float:
    value = threshold_value(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1) like 0.05, or a "
                                         f"percentage like 5%, got {text!r}")
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


def scenario_gate(meta: dict, warn: Callable[[str], None]
                  ) -> tuple[Gate, float | None, bool]:
    """(Gate, threshold, allow_inconclusive) from the ``gate:`` of the scenario text a run
    recorded."""
    import yaml
    from pydantic import ValidationError

    from vbench.stats.compare import Gate
    from vbench.scenario.fielderrors import format_validation_error
    from vbench.scenario.schema import GateSpec

    text = (meta.get("scenario") or {}).get("text") if isinstance(meta, dict) else None
    try:
        doc = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError:
        doc = None
    spec = doc.get("gate") if isinstance(doc, dict) else None
    kind = doc.get("device") if isinstance(doc, dict) else None
    kind = kind if isinstance(kind, str) else None
    if spec is None:
        return Gate.from_spec(None, kind), None, False
    try:
        gs = GateSpec.model_validate(spec)
    except ValidationError as exc:
        raise UserError(f"{format_validation_error(exc, 'gate of the new run')}: fix the "
                        f"scenario, or name the gated metrics with --gate") from None
    return Gate.from_spec(gs, kind), gs.threshold, gs.allow_inconclusive


def parse_thresholds(items: list[str]) -> dict[str, float]:
    """``["iops=0.05", "clat_p99=10%"]`` -> ``{"iops": 0.05, "clat_p99": 0.1}``."""
    out: dict[str, float] = {}
    for item in items:
        m = _THRESHOLD.match(item)
        value = threshold_value(m.group(2) + m.group(3)) if m else None
        if not m or value is None:
            raise UserError(f"--threshold {item!r}: expected METRIC=FRACTION in (0, 1) or "
                            f"METRIC=PERCENT%, e.g. iops=0.05 or clat_p99=10%")
        out[m.group(1)] = value
    return out


def check_comparable(base: Path, new: Path, allow_mixed: bool) -> None:
    """Refuse, in one line, the same run twice, and (unless ``allow_mixed``) runs of different
    scenarios or differing in a checked environment fact (:data:`vbench.core.policy.CHECKED_METADATA`)."""
    from vbench.core.policy import describe_differences
    from vbench.results.record import metadata_differences
    from vbench.results.rundir import load_record

    if base.resolve() == new.resolve():
        raise UserError(f"{base} is passed as both base and new run: compare two different runs")
    rb, rn = load_record(base), load_record(new)
    if rb.run_id and rb.run_id == rn.run_id:
        raise UserError(f"{base} and {new} are the same run ({rb.run_id}): compare two different "
                        f"runs")
    if allow_mixed:
        return
    if rb.scenario.name != rn.scenario.name:
        raise UserError(f"runs of different scenarios ({rb.scenario.name} vs {rn.scenario.name}) "
                        f"are not compared; --allow-mixed to compare them anyway")
    diffs = metadata_differences(rb, rn)
    if diffs:
        raise UserError(f"the runs differ in checked environment facts ({describe_differences(diffs)})"
                        f": numbers from different setups are not comparable; --allow-mixed to "
                        f"compare anyway")


def between_run(spec: str, base: Path, new: Path, gate) -> tuple[float, str]:
    """(run-to-run log sd, one line saying where it comes from) for a compare of two runs."""
    from vbench.stats.history import run_to_run_sd
    from vbench.core.policy import RUN_TO_RUN_DEFAULT_SD, RUN_TO_RUN_MIN_RUNS
    from vbench.results.record import metadata_differences
    from vbench.results.rundir import find_runs, load_record, load_samples

    if spec == "none":
        return 0.0, "within-run intervals only (--between-run none)"
    if spec != "auto":
        value = threshold_value(spec)
        if value is None:
            raise UserError(f"--between-run {spec!r}: expected auto, none, or a log sd like 0.02 "
                            f"or 2%")
        return value, f"run-to-run sd {value:.1%} (--between-run)"
    rec = load_record(new)
    same = []
    for run in find_runs(new.parent, rec.scenario.name):
        if run.resolve() == new.resolve():
            continue
        try:
            if not metadata_differences(load_record(run), rec):
                same.append(run)
        except UserError:
            continue
    if len(same) >= RUN_TO_RUN_MIN_RUNS:
        sd, n = run_to_run_sd(load_samples(*same), gate.metrics)
        if math.isfinite(sd):
            return sd, (f"run-to-run sd {sd:.1%} estimated from {n} earlier runs of "
                        f"{rec.scenario.name} in the same environment (random effects)")
    return RUN_TO_RUN_DEFAULT_SD, (f"run-to-run sd {RUN_TO_RUN_DEFAULT_SD:.0%} (the conservative "
                                   f"default: {len(same)} earlier runs of {rec.scenario.name} in "
                                   f"the same environment, {RUN_TO_RUN_MIN_RUNS} needed)")


def _run_dir(text: str) -> Path:
    path = Path(text)
    if not is_run_dir(path):
        hint = ""
        if path.is_dir() and any(is_run_dir(p) for p in path.iterdir() if p.is_dir()):
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
                  warn: Callable[[str], None]) -> tuple[Gate, float, bool]:
    """The gate (scenario's, or --gate's metrics), the default threshold of a compare and whether
    inconclusive gated rows pass (--allow-inconclusive or the scenario's gate says so)."""
    from vbench.stats.compare import DEFAULT_THRESHOLD, Gate

    from vbench.core.metrics import METRICS

    gate, gate_threshold, allow = scenario_gate(meta, warn)
    allow = allow or bool(getattr(args, "allow_inconclusive", False))
    if args.gate:
        names = tuple(m.strip() for m in args.gate.split(",") if m.strip())
        unknown = [m for m in names if m not in METRICS]
        if unknown or not names:
            raise UserError(f"--gate {args.gate!r}: no such metric {', '.join(unknown) or '(none)'}"
                            f"; gate on metrics vbench measures, e.g. iops, clat_p99, throughput")
        gate = Gate(names, gate.variants, gate.workloads)
    if args.default_threshold is not None:
        return gate, args.default_threshold, allow
    return gate, gate_threshold or DEFAULT_THRESHOLD, allow


def cmd_compare(args) -> ExitStatus:
    if getattr(args, "store", None):
        return store.compare_from_store(args, cmd_compare)
    import sys

    from vbench.stats import compare
    from vbench.results.rundir import load_meta, load_samples
    from vbench.commands.output import check_one_stdout, to_stdout, write_file_or_stdout

    check_one_stdout(json=args.json, junit=args.junit)
    # With --json - or --junit -, stdout carries only that; the human text goes to stderr.
    human = sys.stderr if to_stdout(args.json, args.junit) else sys.stdout

    def out(text: str) -> None:
        print(text, file=human, flush=True)

    thresholds = parse_thresholds(args.threshold)
    abs_thresholds = parse_abs_thresholds(args.abs_threshold)
    base, new = _run_dir(args.base), _run_dir(args.new)
    check_comparable(base, new, getattr(args, "allow_mixed", False))
    warnings: list[str] = []
    base_df = load_samples(base, warn=warnings.append)
    new_df = load_samples(new, warn=warnings.append)
    present = set(base_df["metric"]) | set(new_df["metric"])
    absent = sorted((set(thresholds) | set(abs_thresholds)) - present)
    if absent:
        raise UserError(f"--threshold {absent[0]}=...: no metric {absent[0]!r} in these runs "
                        f"(metrics: {', '.join(sorted(present)) or 'none'})")
    gate, default, allow_inconclusive = _compare_gate(args, load_meta(new), warnings.append)
    for w in warnings:
        out(f"warning: {w}")
    blockers = []
    for label, path in (("base", base), ("new", new)):
        status = load_meta(path).get("status")
        if status != "complete" and not getattr(args, "allow_incomplete", False):
            blockers.append(f"the {label} run {path.name} is {status or 'of unknown status'}, "
                            f"not complete (its numbers may be partial; --allow-incomplete to "
                            f"judge it anyway)")
    tau, tau_note = between_run(getattr(args, "between_run", "none"), base, new, gate)
    out(f"between runs: {tau_note}")
    result = compare.compare(base_df, new_df, thresholds=thresholds, abs_thresholds=abs_thresholds,
                              between_run_sd=tau,
                              default_threshold=default, alpha=args.alpha,
                              allow_mixed=args.allow_mixed, correction=args.correction, gate=gate,
                              fail_inconclusive=not allow_inconclusive, blockers_in=blockers)
    out(f"compare: base {base.name} -> new {new.name}")
    out(result.to_text())
    for path, text, label in ((args.json, result.to_json, "json"),
                              (args.junit, result.to_junit, "junit")):
        if path and not write_file_or_stdout(path, text()):
            out(f"{label}: {path}")
    if result.gate_failed:
        failing = result.gate_failing
        worst = ", ".join(f"{r.status} {r.metric} of {r.workload} on {r.variant}"
                          for r in failing.head(3).itertuples(index=False))
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        raise RegressionFound(f"{result.gate_message()}" + (f": {worst}{more}" if worst else ""))
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
