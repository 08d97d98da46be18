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

import importlib

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

WORKLOADS: dict[str, WorkloadKind] = {}
_frozen = False


def register(kind: WorkloadKind) -> WorkloadKind:
    """Add a workload kind. Only before ``vbench.scenario.schema`` is imported: it builds its
    ``Workload`` model once."""
    kind.validate_declaration()
    if kind.tool in WORKLOADS:
        raise TypeError(f"workload {kind.tool} is registered twice")
    if _frozen:
        raise RuntimeError(f"workload {kind.tool}: register workloads before vbench.scenario.schema "
                           f"is imported (add it to vbench.workloads.MODULES)")
    WORKLOADS[kind.tool] = kind
    return kind


def freeze() -> dict[str, WorkloadKind]:
    """The registry, closed to new kinds (``scenario`` has built its types from it)."""
    global _frozen
    _frozen = True
    return WORKLOADS


for _name in MODULES:
    register(importlib.import_module(f"{__name__}.{_name}").WORKLOAD)

__all__ = ["MODULES", "WORKLOADS", "WorkloadKind", "freeze", "register"]
