"""One home for every fact (issue 19): each fact below is written in exactly one module; a second
definition or a literal copy anywhere else in src/vbench fails. (The gating and pooling facts of
vbench.core.policy have their own test, test_policy.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vbench.workloads import WORKLOADS, WorkloadKind

SRC = Path(__file__).resolve().parents[2] / "src" / "vbench"

# (what, its one home, a pattern that finds a definition or a literal copy)
FACTS = [
    ("the run file name", "results/rundir.py", r"""["']run\.json["']"""),
    ("the command time bound (timeout -k)", "core/procs.py",
     r"""["']timeout["'],\s*["']-k["']|timeout (-s \w+ )?-k \d"""),
    ("the percentile of round-trip times", "workloads/common.py",
     r"""def (nearest_rank|percentile|quantile)\b|median\(rtt"""),
    ("the accelerator override", "host/accel.py", r"""environ\.get\(["']VBENCH_ACCEL["']\)"""),
    ("the domain name prefix", "host/libvirtd.py", r"""DOMAIN_PREFIX\s*=|["']vbench-\{|\^vbench-"""),
    ("vbench's libvirt metadata namespace", "host/libvirtd.py", r"""vbench\.invalid/xmlns"""),
    ("the metric catalogue", "core/metrics.py", r"""MetricInfo\(["']"""),
    ("the direction prefixes of mixed fio jobs", "core/metrics.py", r"""\(["']read_["'],\s*["']write_["']\)|["']read_["']:\s*["']Read"""),
    ("the workload table", "workloads/__init__.py", r"""["']fsmeta["'],\s*["']bytestream["']|^TOOLS\s*=\s*\(["']"""),
    ("the tools a user's image must have", "workloads", r"""GUEST_TOOLS\s*=|guest_tools\s*=\s*\("""),
    ("what another host runs", "workloads", r"""REMOTE_TOOLS\s*=|\bremote\s*=\s*True"""),
    ("a workload's time estimate", "workloads", r"""def (unit_seconds|unit_estimate|estimate_s)\b"""),
    ("the name a direction's samples are stored under", "workloads/base.py",
     r"""\}-(h2g|g2h)["']|\}-\{direction\}"""),
    ("libvirt itself (import libvirt)", "host/libvirtd.py", r"""^\s*(import libvirt\b|from libvirt\b)"""),
    ("the registry of declared kinds (register, freeze)", "core/registry.py",
     r"""registered twice|def freeze\b|global _?frozen|\.frozen\s*=\s*True"""),
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


# A function taking an executor's arguments (scenario, workload, ...). Besides the workload
# modules only two places may: the seam that hands them to the workload (run/executors.execute)
# and A/B's rate cap that wraps that seam (run/ab.with_rate_cap's run).
EXECUTOR = re.compile(r"^\s*def (\w+)\((?:self,\s*)?scn\b[^)]*?,\s*w\b", re.M)
GLUE = {"run/executors.py": ["execute"], "run/ab.py": ["run"]}


def _executors(src: Path = SRC) -> dict[str, list[str]]:
    return {str(p.relative_to(src)): names for p in sorted(src.rglob("*.py"))
            if (names := EXECUTOR.findall(p.read_text()))}


def test_an_executor_lives_in_its_workload_module():
    found = _executors()
    tools = {f"workloads/{tool}.py" for tool in WORKLOADS}
    outside = {p: names for p, names in found.items()
               if p not in tools | {"workloads/base.py"} and GLUE.get(p) != names}
    assert not outside, f"executors written outside their workload module: {outside}"
    assert tools <= set(found), "the pattern misses a workload's executor"
    for tool, kind in WORKLOADS.items():
        run = type(kind).run
        assert run is not WorkloadKind.run and run.__module__ == f"vbench.workloads.{tool}", tool
    assert "kind.run(" in (SRC / "run/executors.py").read_text()


def test_the_executor_rule_sees_an_executor_in_the_run_layer(tmp_path):
    """The shape the seven executors had in run/executors.py before they moved home."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run/executors.py").write_text(
        "def execute(scn, w, target):\n    pass\n\n\n"
        "def run_fio(scn: Scenario, w: Workload,\n            target: Target):\n    pass\n")
    assert _executors(tmp_path) == {"run/executors.py": ["execute", "run_fio"]}


def test_a_sample_outside_the_metric_catalogue_or_in_another_unit_is_refused():
    """The catalogue is the one home of units: a probe cannot invent a metric or relabel one."""
    from vbench.core.metrics import Sample

    assert Sample("w", "iops", 1.0, "IO/s").unit == "IO/s"
    with pytest.raises(ValueError, match="'iops' is measured in 'IO/s', not 'MB/s'"):
        Sample("w", "iops", 1.0, "MB/s")
    with pytest.raises((KeyError, ValueError)):
        Sample("w", "no_such_metric", 1.0, "IO/s")


def test_both_round_trip_probes_take_the_same_percentiles():
    """ping's and the byte stream's rtt_p50 / rtt_p99 are one definition (nearest rank): on
    1..100 us, 50 and 99, never a mean of two or the maximum."""
    from vbench.workloads.bytestream import bytestream_samples
    from vbench.workloads.ping import parse_ping

    rtts = [float(i) for i in range(1, 101)]
    stream = {s.metric: s.value for s in bytestream_samples("w", None, None, rtts)}
    lines = [f"64 bytes from 10.254.1.1: icmp_seq={i} ttl=64 time={r / 1000:.3f} ms"
             for i, r in enumerate(rtts, 1)]
    lines.append("100 packets transmitted, 100 received, 0% packet loss, time 99ms")
    pinged = {s.metric: s.value for s in parse_ping("\n".join(lines), "w")}
    assert stream["rtt_p50"] == pinged["rtt_p50"] == 50.0
    assert stream["rtt_p99"] == pinged["rtt_p99"] == 99.0
