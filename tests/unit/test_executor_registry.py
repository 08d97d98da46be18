"""Every tool a scenario may name has one registered executor and a headline metric that exists."""

from __future__ import annotations

from vbench.run import executors
from vbench.core.metrics import METRICS
from vbench.scenario.schema import TOOLS, Workload
from vbench.run.session import headline_metric


def test_every_tool_is_registered_with_a_known_headline():
    assert set(executors.EXECUTORS) == set(TOOLS) == set(executors.HEADLINE)
    assert all(executors.HEADLINE[t] in METRICS for t in TOOLS)


def test_headline_metric_comes_from_the_registration():
    assert headline_metric(Workload.model_validate({"name": "p", "ping": {}})) == "rtt_p50"
    assert headline_metric(Workload.model_validate({"name": "r", "fio": {"rw": "randread"}})) == "iops"
    assert headline_metric(Workload.model_validate({"name": "s", "fio": {"rw": "read"}})) == "bw"
