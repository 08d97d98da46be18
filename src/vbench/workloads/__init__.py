"""The workloads vbench can run: one module per tool, registered in one table.

Each module owns one tool (fio, iperf3, ping, the entropy probe, the memory give-back probe, the
shared-folder metadata job, the byte channel, the socket byte stream): its scenario spec, its
command lines, the pure parsing of its output into samples (raising only
:class:`vbench.core.errors.ProbeError`), its declaration
(:class:`vbench.workloads.base.WorkloadKind`: metrics, headline, time estimate, guest tools, where
it runs) and its executor (``run``: one repetition, written against the protocols of
:mod:`vbench.workloads.base`, which :mod:`vbench.run.executors` fills from a booted guest).

How to add a workload: write ``workloads/NAME.py`` with its spec (a ``Strict`` model), its parser,
and ``WORKLOAD = Name()`` (a :class:`WorkloadKind` with its ``estimate_s`` and ``run``), then add
``"NAME"`` to :data:`MODULES`. That is all: no other file changes. ``tests/unit/test_workloads.py``
shows a throwaway workload end to end.
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
    "sockstream",
)

_REGISTRY: Registry[WorkloadKind] = Registry("workload", __name__, lambda k: k.tool)
WORKLOADS: dict[str, WorkloadKind] = _REGISTRY.kinds
# register: only before vbench.scenario.schema is imported (it builds its models once)
register = _REGISTRY.register
freeze = _REGISTRY.freeze
_REGISTRY.load(MODULES, "WORKLOAD")

__all__ = ["MODULES", "WORKLOADS", "WorkloadKind", "freeze", "register"]
