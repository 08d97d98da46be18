"""The `publish` command and the `--store URL` option of `report`, `compare` and `history`.

Only argument handling lives here: :mod:`vbench.results.postgres` does the work. A reading command given
``--store`` runs unchanged on runs exported from the database into a temporary results root (run
ids instead of run directories: ``vbench compare RUN_A RUN_B --store URL``, ``RUN@HOST`` when the
same run id came from several hosts).
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path
from typing import Callable

from vbench.core.errors import ExitStatus, UserError

STORE_ENV = "VBENCH_STORE"


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser(
        "publish", help="write runs into a results database (PostgreSQL) for a fleet's history",
        description="Write each run (its run.json with the environment and variants, and its "
                    "samples) into PostgreSQL, migrating the database's vbench schema first. "
                    "Idempotent: a run already there with the same content is left as it is; a "
                    "changed run (e.g. resumed) replaces its old version. Each run is one "
                    "transaction: an interrupted publish leaves nothing partial.")
    sp.add_argument("runs", nargs="+", metavar="RUN",
                    help="run directory (results/<run id>), or a results root for all its runs")
    sp.add_argument("--store", metavar="URL", default=os.environ.get(STORE_ENV),
                    help=f"postgresql://USER@HOST/DB (default: ${STORE_ENV})")
    sp.set_defaults(func=cmd_publish)


def add_store_option(sp: argparse.ArgumentParser) -> None:
    """``--store URL`` for a reading command: its RUN arguments are then run ids in that database."""
    sp.add_argument("--store", metavar="URL",
                    help="read the runs from this results database (postgresql://...) instead of "
                         "run directories; RUN is then a run id (or RUN@HOST)")


def _run_paths(items: list[str]) -> list[Path]:
    from vbench.results.rundir import RUN_FILE, find_runs

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if (p / RUN_FILE).is_file():
            out.append(p)
        elif p.is_dir() and (runs := find_runs(p, warn=lambda w: print(f"warning: {w}"))):
            out.extend(runs)
        else:
            raise UserError(f"{p} is not a run directory or a results root with runs in it")
    return out


def cmd_publish(args: argparse.Namespace) -> ExitStatus:
    from vbench.results import postgres as dbstore

    if not args.store:
        raise UserError(f"vbench publish needs --store postgresql://... (or ${STORE_ENV})")
    runs = _run_paths(args.runs)
    for p in dbstore.publish(args.store, runs, progress=print):
        what = {"inserted": "published", "unchanged": "already there, unchanged",
                "replaced": "replaced its older version"}[p.action]
        print(f"{p.run_id} (host {p.host or 'unknown'}): {what}; {p.samples} samples, "
              f"{p.variants} variants")
    print(f"store: {dbstore.redact(args.store)}")
    return ExitStatus.SUCCESS


def via_store(args, command: Callable, refs: list[str] | None = None,
              scenario: str | None = None, rebind: Callable | None = None) -> ExitStatus:
    """Run a reading ``command`` on runs exported from ``args.store``.

    ``rebind(new_args, root, paths)`` points the copied arguments at the exported run directories.
    """
    from vbench.results import postgres as dbstore

    with dbstore.checkout(args.store, refs=refs, scenario=scenario) as (root, paths):
        new = copy.copy(args)
        new.store = None
        if rebind is not None:
            rebind(new, root, paths)
        return ExitStatus(command(new))


def compare_from_store(args: argparse.Namespace, command: Callable) -> ExitStatus:
    def rebind(new, root, paths):
        new.base, new.new = str(paths[0]), str(paths[1])

    return via_store(args, command, refs=[args.base, args.new], rebind=rebind)


def report_from_store(args: argparse.Namespace, command: Callable) -> ExitStatus:
    if getattr(args, "history_root", None):
        raise UserError("--history with --store: write the history page with "
                        "`vbench history SCENARIO --store URL`")

    def rebind(new, root, paths):
        new.runs = [str(p) for p in paths]

    return via_store(args, command, refs=list(args.runs), rebind=rebind)


def history_from_store(args: argparse.Namespace, command: Callable) -> ExitStatus:
    from vbench.results import postgres as dbstore

    name = args.scenario
    if name.endswith((".yaml", ".yml")):
        conn = dbstore.connect(args.store)
        try:
            name = dbstore.scenario_of_file(conn, Path(name)) or Path(name).stem
        finally:
            conn.close()

    def rebind(new, root, paths):
        new.results, new.scenario = str(root), name
        if not paths:
            raise UserError(f"no runs of scenario {name!r} in the results database")

    return via_store(args, command, scenario=name, rebind=rebind)
