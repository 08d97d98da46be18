"""`vbench validate FILE...`: the checks `run` and `fleet run` make before anything starts, on
scenarios and hosts files alike (told apart by content), every problem one line; nothing boots."""

from __future__ import annotations

import argparse
import sys

from vbench.core.errors import ExitStatus
from vbench.commands.output import say


def cmd_validate(args: argparse.Namespace) -> ExitStatus:
    from vbench.commands.preflight import check_file, resolve_scenario

    bad = 0
    for name in args.files:
        checked = check_file(resolve_scenario(name), max_hours=args.max_hours)
        for problem in checked.problems:
            print(f"vbench: error: {problem}", file=sys.stderr, flush=True)
        if checked.problems:
            bad += 1
        elif checked.kind == "hosts":
            say(f"{name}: ok (hosts file, {len(checked.hosts)} host(s))")
        else:
            scn = checked.scenario
            say(f"{name}: ok (scenario {scn.name}: {len(scn.variants)} variant(s) x "
                f"{len(scn.workloads)} workload(s) x {scn.max_repetitions} repetition(s))")
    return ExitStatus.SCENARIO_INVALID if bad else ExitStatus.SUCCESS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser(
        "validate", help="check scenario and hosts files as run/fleet run would; nothing boots",
        description="Check each file (a scenario or a hosts file, told apart by its content) with "
                    "the checks `run` and `fleet run` make before anything starts, including the "
                    "budget against this host. Every problem is one line with its field path. "
                    "Exit 0 when all files pass, 3 otherwise. No lab is needed.")
    sp.add_argument("files", nargs="+", metavar="FILE", help="scenario or hosts YAML file")
    sp.add_argument("--max-hours", type=float, default=24.0,
                    help="refuse scenarios whose estimated run time is longer (default: 24)")
    sp.set_defaults(func=cmd_validate)
