"""`vbench fleet run|compare|report`: one scenario over many hosts, hosts side by side."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from vbench.core.errors import ExitStatus, UserError
from vbench.results.rundir import is_run_dir
from vbench.commands.output import say, table, write_file_or_stdout


def _identities(hosts) -> tuple[dict, list]:
    """Identity keys per host; hosts whose libvirt does not answer fail here with one line."""
    from vbench.fleet.identity import identify
    from vbench.fleet.schedule import Outcome

    ids, failed = {}, []
    for h in hosts:
        try:
            ids[h.name] = identify(h)
        except UserError as exc:
            failed.append(Outcome(h, -1, status="failed", message=str(exc)))
    return ids, failed


def _fleet_dir(args: argparse.Namespace, scenario_name: str) -> Path:
    if args.out:
        out = Path(args.out)
    else:
        out = Path(args.fleets) / f"{time.strftime('%Y%m%d-%H%M%S')}-{scenario_name}"
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; name a new fleet directory with --out")
    return out


def _announce(groups, failed) -> None:
    for i, g in enumerate(groups):
        names = ", ".join(h.name for h in g)
        how = "one after another (same machine)" if len(g) > 1 else "alone on its machine"
        say(f"machine {i + 1}: {names} ({how})")
    for o in failed:
        say(f"FAILED {o.host.name}: {o.message}")


def _with_signals(launcher, work):
    """Run ``work()``; SIGINT/SIGTERM are forwarded to every child (SIGTERM) and waited for."""
    def forward(signum, _frame):
        n = launcher.interrupt(signal.SIGTERM)
        say(f"fleet: signal {signum}: stopping; waiting for {n} running host(s) to destroy their "
            f"guests")

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return work()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _Board:
    """The fleet's outcomes so far, written to fleet.json (under a lock) whenever one changes."""

    def __init__(self, fleet: Path, scenario: str, hosts, groups, ids, failed) -> None:
        from vbench.fleet.index import pending

        self.fleet, self.scenario, self.ids, self.failed = fleet, scenario, ids, failed
        self.started = time.time()
        self.outcomes = pending([h for g in groups for h in g],
                                {h.name: i for i, g in enumerate(groups) for h in g})
        self._lock = threading.Lock()

    def put(self, outcome) -> None:
        with self._lock:
            names = [o.host.name for o in self.outcomes]
            self.outcomes[names.index(outcome.host.name)] = outcome
            self.write("running")

    def write(self, status: str) -> None:
        from vbench.fleet.index import write_index

        write_index(self.fleet, self.scenario, self.started, self.outcomes + self.failed, self.ids,
                    status)

    def everything(self) -> list:
        return self.outcomes + self.failed


def cmd_fleet_run(args: argparse.Namespace) -> ExitStatus:
    from vbench.fleet import index
    from vbench.fleet.hosts import load_hosts
    from vbench.fleet.launch import Launcher
    from vbench.fleet.schedule import group_hosts, run_groups
    from vbench.commands.preflight import require_scenario

    hosts = load_hosts(Path(args.hosts))
    # Refuse a bad scenario once, before any host starts (the checks of `vbench validate`; the
    # host budget is each host's own `vbench run`'s).
    scn, _text, _path = require_scenario(args.scenario, repetitions=args.repetitions, host=None)
    from vbench.core.extras import require_lab

    require_lab("vbench fleet run")
    fleet = _fleet_dir(args, scn.name)
    ids, failed = _identities(hosts)
    groups = group_hosts([h for h in hosts if h.name in ids], ids)
    _announce(groups, failed)
    board = _Board(fleet, scn.name, hosts, groups, ids, failed)
    board.write("running")
    say(f"fleet: {len(hosts)} host(s) on {len(groups)} machine(s); index {fleet / index.INDEX}")
    extra = ["--repetitions", str(args.repetitions)] if args.repetitions else []
    launcher = Launcher(args.scenario, fleet / index.HOSTS_DIR, say, extra)

    def run_one(host, group):
        o = launcher.run(host, group)
        board.put(o)
        say(f"fleet: {'done' if o.ok else o.status.upper()} {host.name}"
            + (f": {o.message}" if o.message else ""))
        return o

    board.outcomes = _with_signals(launcher, lambda: run_groups(groups, run_one, launcher.stop))
    stopped = launcher.stop.is_set()
    everything = board.everything()
    board.write("interrupted" if stopped else
                ("complete" if all(o.ok for o in everything) else "partial"))
    return _finish(args, fleet, everything, stopped)


def _finish(args, fleet: Path, outcomes, stopped: bool) -> ExitStatus:
    bad = [o for o in outcomes if not o.ok]
    for o in bad:
        say(f"FAILED {o.host.name}: {o.status}: {o.message}")
    if any(o.run_dir for o in outcomes) and not stopped:  # interrupted: exit at once
        try:
            _print_compare(fleet, everything=False, json_out=None)
            if not args.no_report:
                _report(fleet, None)
        except UserError as exc:
            say(f"no side-by-side comparison: {exc}")
    say(f"fleet: {len(outcomes) - len(bad)} of {len(outcomes)} host(s) complete")
    say(f"fleet: {fleet}")
    if stopped:
        return ExitStatus.INTERRUPTED
    return ExitStatus.SUCCESS if not bad else ExitStatus.UNITS_FAILED


def _runs_of(args: argparse.Namespace) -> list[tuple[str, Path]]:
    from vbench.fleet.hosts import NAME
    from vbench.fleet.index import fleet_runs

    if args.fleet:
        return fleet_runs(Path(args.fleet))
    runs = []
    for item in args.run or []:
        name, sep, path = item.partition("=")
        if not sep or not NAME.match(name) or not is_run_dir(path):
            raise UserError(f"--run {item!r}: expected HOST=RUN_DIRECTORY with a safe host name")
        runs.append((name, Path(path)))
    if len({n.lower() for n, _p in runs}) != len(runs):
        raise UserError("--run: a host name appears twice")
    if not runs:
        raise UserError("name a fleet directory or --run HOST=RUN_DIRECTORY (at least one)")
    return runs


def _print_compare(fleet: Path | None, everything: bool, json_out: str | None,
                   runs: list | None = None) -> None:
    from vbench.fleet.compare import host_ratios, side_by_side, to_json
    from vbench.fleet.index import fleet_runs

    # With --json -, stdout carries only the JSON; the human text goes to stderr.
    out = (lambda text: print(text, file=sys.stderr, flush=True)) if json_out == "-" else say
    runs = runs if runs is not None else fleet_runs(Path(fleet or "."))
    r = host_ratios(runs, everything=everything, warn=lambda w: out(f"warning: {w}"))
    header, rows = side_by_side(r, [n for n, _p in runs])
    out("")
    out("Paravirtual / emulated per host (ratio of medians, 95% interval, verdict):")
    out(table(rows, header))
    if json_out and not write_file_or_stdout(json_out, json.dumps(to_json(r), indent=2) + "\n"):
        out(f"json: {json_out}")


def cmd_fleet_compare(args: argparse.Namespace) -> ExitStatus:
    _print_compare(None, args.all, args.json, runs=_runs_of(args))
    return ExitStatus.SUCCESS


def _report(fleet: Path, out: str | None, runs: list | None = None) -> None:
    from vbench.fleet.index import fleet_runs
    from vbench.report import build_report

    runs = runs if runs is not None else fleet_runs(fleet)
    if not runs:
        raise UserError("no host has a run to report on")
    dest = Path(out) if out else fleet / "report"
    page = build_report([p for _n, p in runs], dest, labels=[n for n, _p in runs],
                        title="vbench fleet: " + ", ".join(n for n, _p in runs))
    say(f"report: {page}")


def cmd_fleet_report(args: argparse.Namespace) -> ExitStatus:
    runs = _runs_of(args)
    if not args.out and not args.fleet:
        raise UserError("with --run, name the report directory with --out")
    _report(Path(args.fleet or "."), args.out, runs)
    return ExitStatus.SUCCESS


def _sources(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("fleet", nargs="?", metavar="FLEET", help="fleet directory (has fleet.json)")
    sp.add_argument("--run", action="append", metavar="HOST=RUN",
                    help="a host's run directory instead of a fleet directory (repeatable)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    import os

    fp = sub.add_parser("fleet", help="run a scenario on many hosts; hosts side by side")
    fsub = fp.add_subparsers(dest="fleet_command", metavar="ACTION")
    fsub.required = True
    sp = fsub.add_parser("run", help="fan a scenario out over the hosts of a hosts file")
    sp.add_argument("scenario", help="scenario YAML file")
    sp.add_argument("--hosts", required=True, metavar="FILE",
                    help="hosts file: a YAML list of {name, connect, netns, env, machine} "
                         "(check it with `vbench validate FILE`)")
    sp.add_argument("--out", metavar="DIR", help="fleet directory (default: FLEETS/<time>-<scenario>)")
    sp.add_argument("--fleets", default=os.environ.get("VBENCH_FLEETS", "fleets"), metavar="DIR",
                    help="where fleet directories go (default: ./fleets)")
    sp.add_argument("--repetitions", type=int, help="override the scenario's repetitions")
    sp.add_argument("--no-report", action="store_true", help="do not write the fleet's HTML report")
    sp.set_defaults(func=cmd_fleet_run)
    sp = fsub.add_parser("compare", help="per host, the paravirtual/emulated ratios in columns")
    _sources(sp)
    sp.add_argument("--all", action="store_true", help="every metric, not only the headline ones")
    sp.add_argument("--json", metavar="FILE", help="also write the ratios as JSON (- for stdout; "
                                                   "the table then goes to stderr)")
    sp.set_defaults(func=cmd_fleet_compare)
    sp = fsub.add_parser("report", help="HTML report with the hosts side by side")
    _sources(sp)
    sp.add_argument("--out", metavar="DIR", help="report directory (default: FLEET/report)")
    sp.set_defaults(func=cmd_fleet_report)
