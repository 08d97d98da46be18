"""The workloads vbench can run: one module per tool, registered in one table.

Each module owns one tool (fio, iperf3, ping, the entropy probe, the memory give-back probe, the
shared-folder metadata job, the byte channel): its scenario spec, its command lines, the pure
parsing of its output into samples (raising only :class:`vbench.core.errors.ProbeError`), and its
declaration (:class:`vbench.workloads.base.WorkloadKind`: metrics, headline, time estimate, guest
tools, where it runs). How a repetition is executed on a guest or host lives in
:mod:`vbench.run.executors` (it needs the host and the guest), keyed by the same tool names and
checked complete against :data:`WORKLOADS` when it is imported.

How to add a workload: write ``workloads/NAME.py`` with its spec (a ``Strict`` model), its parser
and ``WORKLOAD = Name()`` (a :class:`WorkloadKind`), add ``"NAME"`` to :data:`MODULES`, and give
it an executor (``@register("NAME")`` in run/executors.py). ``tests/unit/test_workloads.py`` shows
a throwaway workload end to end.
"""

from __future__ import annotations

from vbench.core.registry import Registry
from vbench.workloads.base import WorkloadKind

# The registration table: one line per workload module, in the order of scenario fields.
MODULES = (
    "fio",
    "iperf3",
    "ping",
    "entropy",
    "balloon",
    "fsmeta",
    "bytestream",
)

_REGISTRY: Registry[WorkloadKind] = Registry("workload", __name__, lambda k: k.tool)
WORKLOADS: dict[str, WorkloadKind] = _REGISTRY.kinds
register = _REGISTRY.register  # only before vbench.scenario.schema is imported (it builds its models once)
freeze = _REGISTRY.freeze
_REGISTRY.load(MODULES, "WORKLOAD")

__all__ = ["MODULES", "WORKLOADS", "WorkloadKind", "freeze", "register"]
