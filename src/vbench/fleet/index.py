"""A fleet directory and its index.

::

    FLEET/fleet.json            what ran where: hosts, their machine groups, statuses, run dirs
    FLEET/hosts/NAME/RUN_ID/    each host's run (an ordinary results root per host)
    FLEET/hosts/NAME/run.log    the child's output

``fleet.json`` is rewritten atomically whenever a host finishes, so a reader (or a killed fleet
run) sees the state before or after, never half. Reading it back treats it as untrusted: host
names are checked again and every run path must stay inside the fleet directory.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Sequence

from vbench.core.errors import UserError
from vbench.results.rundir import is_run_dir
from vbench.core.files import atomic_write, read_bytes
from vbench.fleet.hosts import NAME, Host
from vbench.fleet.identity import Identity
from vbench.fleet.schedule import Outcome

INDEX = "fleet.json"
HOSTS_DIR = "hosts"
SCHEMA = 1
MAX_INDEX_BYTES = 1 << 20


def _iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def machine_label(identity: Identity) -> str:
    """A short digest of a host's identity keys (the keys themselves stay private)."""
    return hashlib.sha256("\n".join(sorted(identity)).encode()).hexdigest()[:12]


def _host_entry(fleet: Path, o: Outcome, identity: Identity | None) -> dict:
    rel = None
    if o.run_dir is not None:
        try:
            rel = str(Path(o.run_dir).resolve().relative_to(fleet.resolve()))
        except ValueError:
            rel = None
    return {"name": o.host.name, "connect": o.host.connect, "netns": o.host.netns,
            "env": dict(o.host.env), "declared_machine": o.host.machine, "group": o.group,
            "machine": machine_label(identity) if identity else None, "status": o.status,
            "exit_status": o.exit_status, "message": o.message, "run": rel,
            "log": f"{HOSTS_DIR}/{o.host.name}/run.log", "started": _iso(o.started),
            "finished": _iso(o.finished)}


def write_index(fleet: Path, scenario: str, started: float, outcomes: Sequence[Outcome],
                identities: dict[str, Identity], status: str) -> None:
    doc = {"fleet_schema": SCHEMA, "scenario": scenario, "status": status, "started": _iso(started),
           "updated": _iso(time.time()),
           "hosts": [_host_entry(fleet, o, identities.get(o.host.name)) for o in outcomes]}
    atomic_write(fleet / INDEX, json.dumps(doc, indent=2) + "\n")


def fleet_runs(fleet: Path) -> list[tuple[str, Path]]:
    """(host name, run directory) of every host of a fleet directory that has a run."""
    fleet = Path(fleet)
    if not (fleet / INDEX).is_file():
        raise UserError(f"{fleet} is not a fleet directory (no {INDEX}); pass the directory "
                        f"`vbench fleet run` printed")
    try:
        doc = json.loads(read_bytes(fleet / INDEX, MAX_INDEX_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{fleet / INDEX} is not readable JSON ({str(exc)[:80]})") from None
    hosts = doc.get("hosts") if isinstance(doc, dict) else None
    if not isinstance(hosts, list):
        raise UserError(f"{fleet / INDEX}: no hosts list")
    base = fleet.resolve()
    out: list[tuple[str, Path]] = []
    for h in hosts:
        name, rel = (h.get("name"), h.get("run")) if isinstance(h, dict) else (None, None)
        if not isinstance(name, str) or not NAME.match(name):
            raise UserError(f"{fleet / INDEX}: a host name is not a safe name")
        if rel is None:
            continue
        run = (base / rel).resolve() if isinstance(rel, str) else base
        if base not in run.parents or not is_run_dir(run):
            raise UserError(f"{fleet / INDEX}: the run of {name} is not a run directory inside "
                            f"the fleet directory")
        out.append((name, run))
    return out


def pending(hosts: Sequence[Host], groups: dict[str, int]) -> list[Outcome]:
    return [Outcome(h, groups.get(h.name, -1)) for h in hosts]
