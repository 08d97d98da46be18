"""The gating and pooling policy has one home (vbench.core.policy): every fact is defined there once,
every device kind has default gated metrics, and the rest of the tree imports them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vbench.core import policy
from vbench.devices import DEVICES
from vbench.core.metrics import METRICS

SRC = Path(__file__).resolve().parents[2] / "src" / "vbench"
BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_gate.py"

# (what, pattern): a second definition or a literal copy of a policy fact anywhere but policy.py
DUPLICATED = (
    ("the host variant name", r'^\s*[A-Z_]+\s*[:=][^=\n]*=?\s*"host"\s*$|(==|!=)\s*["\x27]host["\x27]|["\x27]host["\x27]\s*(==|!=)|'
                              r'\bin\s*\(?\[?"host"|Target\("host"|\(\["host"\]|\w+\["host"\]\s*=(?!=)'),
    ("the default gated metrics", r'DEFAULT_GATE_METRICS\s*[:=]|"throughput",\s*"rtt_p99"|'
                                  r'default_factory=lambda:\s*\["iops"'),
    ("the verdict order", r'\(\s*"regression",\s*"inconclusive"|\[\s*"regression",\s*"inconclusive"'),
    ("which verdicts fail the gate", r'isin\(\[?\(?"regression"|FAILING\s*='),
    ("the grouping keys", r'"scenario",\s*"workload",\s*"metric",\s*"variant",\s*"accelerator"|'
                          r'^\s*CONTEXT\s*=|SERIES_KEYS\s*=\s*[\[(]'),
    ("the checked metadata", r'CHECKED_METADATA[^=\n]*=\s*\('),
)


def _sources():
    for path in sorted(SRC.rglob("*.py")) + [BENCH]:
        if path.name != "policy.py":
            yield path, path.read_text()


@pytest.mark.parametrize("what,pattern", DUPLICATED, ids=[d[0] for d in DUPLICATED])
def test_no_policy_fact_is_defined_twice(what, pattern):
    rx = re.compile(pattern, re.M)
    found = [f"{p.relative_to(SRC.parents[1])}:{t.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
             for p, t in _sources() for m in rx.finditer(t)]
    assert not found, f"{what} is defined outside vbench/policy.py: {found}"
    assert rx.search((SRC / "core" / "policy.py").read_text()), f"the pattern for {what} finds nothing"


def test_every_device_kind_has_default_gated_metrics():
    assert set(policy.DEFAULT_GATE_METRICS) == set(DEVICES)
    for kind, metrics in policy.DEFAULT_GATE_METRICS.items():
        assert metrics and set(metrics) <= set(METRICS), kind


def test_unknown_kind_fails_closed():
    with pytest.raises(KeyError):
        policy.default_gate_metrics(["disk", "nosuchkind"])
    assert policy.default_gate_metrics(["host", "disk"]) == ("iops", "clat_p99")


def test_which_verdicts_fail_the_gate():
    assert policy.fails_gate("regression", allow_inconclusive=True)
    assert policy.fails_gate("missing", allow_inconclusive=True)
    assert policy.fails_gate("inconclusive") and not policy.fails_gate("inconclusive", True)
    assert not any(policy.fails_gate(v) for v in ("improvement", "unchanged"))
    assert set(policy.FAILING) < set(policy.VERDICTS)
