"""`vbench ab`: a scenario on two sides (QEMU, guest kernel, libvirt) in one interleaved run,
side B compared against side A (the sides and their expansion live in :mod:`vbench.run.ab`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vbench.core.errors import ExitStatus, RegressionFound, UserError
from vbench.commands.output import say


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser(
        "ab", help="A/B in one session: a scenario on two sides (QEMU, guest kernel, libvirt), "
                   "interleaved; side B compared against side A; exit 1 when the gate fails",
        description="Runs the scenario with every variant on side A and on side B, interleaved in "
                    "one run (host drift cancels), then compares side B against side A per variant "
                    "with the same verdicts as `vbench compare`.")
    sp.add_argument("scenario", help="scenario YAML file")
    sp.add_argument("--a", action="append", default=[], metavar="KEY=VALUE", required=True,
                    help="side A: emulator=PATH, kernel=PATH, initrd=PATH, uri=URI, rate_iops=N "
                         "(repeatable or comma-separated)")
    sp.add_argument("--b", action="append", default=[], metavar="KEY=VALUE", required=True,
                    help="side B, like --a")
    sp.add_argument("--repetitions", type=int, help="override the scenario's repetitions")
    sp.add_argument("--results", default=os.environ.get("VBENCH_RESULTS", "results"),
                    help="results root (default: ./results)")
    sp.add_argument("--json", metavar="FILE", help="write the comparison as JSON")
    sp.add_argument("--junit", metavar="FILE", help="write the comparison as JUnit XML")
    sp.add_argument("--allow-inconclusive", action="store_true",
                    help="pass the gate when gated rows are inconclusive")
    sp.add_argument("--connect", metavar="URI", help="libvirt URI of both sides (default: the lab)")
    sp.add_argument("--accel", choices=("kvm", "tcg"), help="force the accelerator")
    sp.set_defaults(func=cmd_ab)


def cmd_ab(args: argparse.Namespace) -> ExitStatus:
    from vbench.scenario import budget
    from vbench.run import runner
    from vbench.run.ab import check_sides, expand, parse_side, side_frames
    from vbench.stats.compare import Gate, compare
    from vbench.scenario.schema import load_scenario
    from vbench.results.rundir import atomic_write, load_samples

    a, b = parse_side(args.a, "a"), parse_side(args.b, "b")
    check_sides(a, b)
    if args.repetitions is not None and args.repetitions < 1:
        raise UserError("--repetitions must be at least 1")
    base = load_scenario(args.scenario)
    scn = expand(base, (a, b))
    budget.check(scn, args.repetitions or scn.max_repetitions)
    say(f"A/B: side A {a.describe()}; side B {b.describe()}")
    import yaml

    text = yaml.safe_dump(scn.model_dump(mode="json", exclude_none=True), sort_keys=False)
    run = runner.run_scenario(scn, text, args.scenario, Path(args.results), args.connect,
                              args.accel, say, repetitions=args.repetitions, sides=(a, b))
    side_a, side_b = side_frames(load_samples(run))
    gate = Gate.from_spec(base.gate)
    threshold = getattr(base.gate, "threshold", None) if base.gate is not None else None
    kw = {"default_threshold": threshold} if threshold else {}
    result = compare(side_a, side_b, gate=gate, fail_inconclusive=not args.allow_inconclusive, **kw)
    say(f"compare: side A ({a.describe()}) -> side B ({b.describe()})")
    say(result.to_text())
    if args.json:
        atomic_write(Path(args.json), result.to_json())
    if args.junit:
        atomic_write(Path(args.junit), result.to_junit())
    say(f"run: {run}")
    if result.gate_failed:
        raise RegressionFound(result.gate_message())
    return ExitStatus.SUCCESS
