"""`vbench run`: a scenario (or a run to resume) in, a results directory and a report out."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from vbench.core.errors import ExitStatus, StoreError, UserError
from vbench.results.rundir import RUN_FILE
from vbench.core.extras import require_lab
from vbench.commands.lab import connect_opts
from vbench.commands.output import say, table


def _scenario_of(args: argparse.Namespace):
    """(scenario, its text, its file name, results root, resume path or None, repetitions)."""
    from vbench.scenario import budget
    from vbench.scenario.schema import load_scenario_text
    from vbench.commands import preflight
    from vbench.results.rundir import load_record

    resume = Path(args.resume) if args.resume else None
    if resume is not None:
        stored = load_record(resume)
        text = stored.scenario.text
        scn = load_scenario_text(text, where=f"{resume}/{RUN_FILE} scenario")
        scenario_file, results_root = stored.scenario.file, resume.parent
        reps = stored.repetitions
    else:
        if not args.scenario:
            raise UserError("name a scenario file (e.g. `vbench run scenarios/disk.yaml`) or --resume RUN")
        if args.repetitions is not None and args.repetitions < 1:
            raise UserError("--repetitions must be at least 1")
        # Before anything boots, the checks `vbench validate` makes (every problem listed): a
        # scenario from someone else must be sound and fit this host and --max-hours.
        scn, text, path = preflight.require_scenario(
            args.scenario, repetitions=args.repetitions,
            max_hours=getattr(args, "max_hours", None) or budget.DEFAULT_MAX_HOURS)
        scenario_file, results_root = str(path), Path(args.results)
        return scn, text, scenario_file, results_root, resume
    if args.repetitions is not None and args.repetitions < 1:
        raise UserError("--repetitions must be at least 1")
    if not isinstance(reps, int) or isinstance(reps, bool) or reps < 1:
        raise StoreError(f"{resume}/{RUN_FILE}: repetitions {reps!r} is not a positive whole number")
    # Before anything boots: a scenario from someone else must fit this host and --max-hours.
    budget.check(scn, reps, max_hours=getattr(args, "max_hours", None) or budget.DEFAULT_MAX_HOURS)
    return scn, text, scenario_file, results_root, resume


def _report(args: argparse.Namespace, run_path: Path) -> None:
    try:
        from vbench.report import build_report

        out = build_report([run_path], Path(args.reports) / run_path.resolve().name)
        say(f"report: {out}")
    except UserError as exc:
        say(f"report not written: {exc}")
    except Exception as exc:  # the results are safe; a report bug must not hide them
        say(f"report not written (bug: {type(exc).__name__}: {exc}); results are intact, rebuild "
            f"it with `vbench report {run_path}`")


def _run_nested(args: argparse.Namespace, scn, text: str, scenario_file: str,
                results_root: Path, resume: Path | None) -> Path:
    """The same `vbench run` inside the nested lab's hypervisor guest (vbench.run.nested)."""
    from vbench.run import nested

    if args.connect or args.accel or resume is not None:
        raise UserError("--nested runs in the nested lab's own libvirt under the accelerator it "
                        "probes there: no --connect, --accel or --resume with it (yet)")
    if scn.guest.image_file is not None:
        raise UserError("--nested: a guest image of your own (guest.image_file) is not shared "
                        "into the nested lab yet; use a recipe image")
    extra = [] if args.repetitions is None else ["--repetitions", str(args.repetitions)]
    extra += ["--max-hours", str(args.max_hours)]
    image = "debian12" if scn.guest.image == "default" else scn.guest.image
    path = nested.run(scenario_file, text, results_root, say, extra, inner_image=image)
    if path is None:
        raise UserError("the run inside the nested lab stored no results (see its lines above)")
    say(f"results copied from the hypervisor guest to {path}")
    return path


def cmd_run(args: argparse.Namespace) -> ExitStatus:
    from vbench.run import runner
    from vbench.run.session import fmt_time
    from vbench.results.rundir import load_record

    scn, text, scenario_file, results_root, resume = _scenario_of(args)
    if resume is None:
        from vbench.commands.plan import estimate_line, local_cpus

        say(estimate_line(scn, args.repetitions or scn.max_repetitions, local_cpus(args)))
    require_lab("vbench run")
    t0 = time.monotonic()
    if getattr(args, "nested", False):
        run_path = _run_nested(args, scn, text, scenario_file, results_root, resume)
    else:
        run_path = runner.run_scenario(scn, text, scenario_file, results_root, args.connect,
                                       args.accel, say, repetitions=args.repetitions, resume=resume)
    rows = runner.summary_rows(run_path, scn)
    if rows:
        say("")
        say(table(rows, ("workload", "metric", "variant", "median", "n")))
    from vbench.report.terminal import headline_lines

    for line in headline_lines(run_path):
        say(line)
    done = load_record(run_path)
    if done.failures:
        say(f"{len(done.failures)} failure(s) recorded in {run_path / RUN_FILE}")
    if not args.no_report:
        _report(args, run_path)
    say(f"took {fmt_time(time.monotonic() - t0)}")
    say(f"run: {run_path}")
    ok = done.status == "complete" and not done.failures
    return ExitStatus.SUCCESS if ok else ExitStatus.UNITS_FAILED


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("run", help="run a scenario and store its results")
    sp.add_argument("scenario", nargs="?",
                    help="scenario YAML file (e.g. scenarios/disk.yaml), or a shipped scenario's "
                         "name (e.g. disk)")
    sp.add_argument("--results", default=os.environ.get("VBENCH_RESULTS", "results"),
                    help="results root (default: ./results)")
    sp.add_argument("--reports", default=os.environ.get("VBENCH_REPORTS", "reports"),
                    help="reports root (default: ./reports)")
    sp.add_argument("--repetitions", type=int, help="override the scenario's repetitions")
    sp.add_argument("--resume", metavar="RUN", help="finish the missing repetitions of a run directory")
    sp.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    sp.add_argument("--max-hours", type=float, default=24.0,
                    help="refuse scenarios whose estimated run time is longer (default: 24)")
    sp.add_argument("--nested", action="store_true",
                    help="run it inside the nested lab (KVM one level down; boots it if not up)")
    connect_opts(sp)
    sp.set_defaults(func=cmd_run)
