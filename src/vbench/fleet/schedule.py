"""Hosts of one machine one after another, different machines in parallel.

:func:`group_hosts` joins hosts whose identities share a key (transitively: if A shares a key
with B and B with C, all three are one machine); :func:`run_groups` runs each group in a thread
of its own, its hosts strictly in sequence, so two hosts of one machine never measure at once.
A stop event ends every group after its current host; hosts not started are reported skipped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from vbench.fleet.hosts import Host
from vbench.fleet.identity import Identity


@dataclass
class Outcome:
    """What became of one host's run."""

    host: Host
    group: int
    status: str = "pending"        # complete, failed, interrupted, skipped
    exit_status: int | None = None
    run_dir: Path | None = None
    message: str = ""
    started: float | None = None   # time.time() of the child's start and end
    finished: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "complete"


def group_hosts(hosts: Sequence[Host], identities: Mapping[str, Identity]) -> list[list[Host]]:
    """Hosts grouped by shared identity keys, in the hosts file's order."""
    parent = list(range(len(hosts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, h in enumerate(hosts):
        for key in sorted(identities[h.name]):
            if key in owner:
                parent[root(i)] = root(owner[key])
            else:
                owner[key] = i
    groups: dict[int, list[Host]] = {}
    for i, h in enumerate(hosts):
        groups.setdefault(root(i), []).append(h)
    return sorted(groups.values(), key=lambda g: hosts.index(g[0]))


RunOne = Callable[[Host, int], Outcome]


def _group_worker(group: list[Host], index: int, run_one: RunOne, stop: threading.Event,
                  outcomes: dict[str, Outcome]) -> None:
    for host in group:
        if stop.is_set():
            outcomes[host.name] = Outcome(host, index, status="skipped",
                                          message="not started: the fleet run was interrupted")
            continue
        try:
            outcomes[host.name] = run_one(host, index)
        except Exception as exc:  # one host's trouble never stops the others
            outcomes[host.name] = Outcome(host, index, status="failed",
                                          message=f"{type(exc).__name__}: {exc}")


def run_groups(groups: Sequence[list[Host]], run_one: RunOne, stop: threading.Event,
               poll: float = 0.2) -> list[Outcome]:
    """Run every group in parallel, each group's hosts in sequence; outcomes in group order.

    The calling thread only waits (in short joins, so that signal handlers run in it).
    """
    outcomes: dict[str, Outcome] = {}
    threads = [threading.Thread(target=_group_worker, args=(g, i, run_one, stop, outcomes),
                                name=f"fleet-group-{i}", daemon=True) for i, g in enumerate(groups)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(poll)
    return [outcomes[h.name] for g in groups for h in g]


def overlaps(outcomes: Sequence[Outcome]) -> list[tuple[str, str]]:
    """Pairs of hosts whose runs overlapped in time (for checks and tests)."""
    spans = [(o.host.name, o.started, o.finished) for o in outcomes
             if o.started is not None and o.finished is not None]
    return [(a, b) for i, (a, a0, a1) in enumerate(spans) for b, b0, b1 in spans[i + 1:]
            if a0 < b1 and b0 < a1]
