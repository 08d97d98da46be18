"""One home for every fact (issue 19): each fact below is written in exactly one module; a second
definition or a literal copy anywhere else in src/vbench fails. (The gating and pooling facts of
vbench.core.policy have their own test, test_policy.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "vbench"

# (what, its one home, a pattern that finds a definition or a literal copy)
FACTS = [
    ("the run file name", "results/rundir.py", r"""["']run\.json["']"""),
    ("the command time bound (timeout -k)", "core/procs.py", r"""["']timeout["'],\s*["']-k["']|timeout -k"""),
    ("the accelerator override", "host/accel.py", r"""environ\.get\(["']VBENCH_ACCEL["']\)"""),
    ("the domain name prefix", "host/libvirtd.py", r"""DOMAIN_PREFIX\s*=|["']vbench-\{|\^vbench-"""),
    ("vbench's libvirt metadata namespace", "host/libvirtd.py", r"""vbench\.invalid/xmlns"""),
    ("the metric catalogue", "core/metrics.py", r"""MetricInfo\(["']"""),
    ("the direction prefixes of mixed fio jobs", "core/metrics.py", r"""\(["']read_["'],\s*["']write_["']\)|["']read_["']:\s*["']Read"""),
    ("the workload table", "workloads/__init__.py", r"""["']fsmeta["'],\s*["']bytestream["']|^TOOLS\s*=\s*\(["']"""),
    ("the tools a user's image must have", "workloads", r"""GUEST_TOOLS\s*=|guest_tools\s*=\s*\("""),
    ("what another host runs", "workloads", r"""REMOTE_TOOLS\s*=|\bremote\s*=\s*True"""),
    ("a workload's time estimate", "workloads", r"""def (unit_seconds|unit_estimate|estimate_s)\b"""),
]


def _where(pattern: str) -> set[str]:
    rx = re.compile(pattern, re.M)
    return {str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if rx.search(p.read_text())}


@pytest.mark.parametrize("what,home,pattern", FACTS, ids=[f[0] for f in FACTS])
def test_a_fact_lives_in_one_home(what, home, pattern):
    found = _where(pattern)
    assert found, f"the pattern for {what} finds nothing: the test would pass on anything"
    allowed = {p for p in found if p == home or p.startswith(home + "/")}
    # the budget and the live progress line ask the workload for the estimate; they keep the
    # names of their own functions, which are one line that delegates
    if what == "a workload's time estimate":
        allowed |= {"scenario/budget.py", "run/session.py"}
        for path in ("scenario/budget.py", "run/session.py"):
            assert "kind.estimate_s(" in (SRC / path).read_text(), path
    assert found <= allowed, f"{what} is written outside {home}: {sorted(found - allowed)}"
