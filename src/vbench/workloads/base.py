"""What every workload module declares: its scenario spec, the metrics it stores, its headline
metric, how long one repetition takes, the programs it needs in the guest and where it can run.

A workload module (``workloads/fio.py``, ...) ends with ``WORKLOAD = Fio()``; :mod:`vbench.workloads`
registers it from its ``MODULES`` table. Everything else asks the registry: the scenario's
``Workload`` model is built from it, the budget and the live estimates call :meth:`estimate_s`, a
user's image is checked for :attr:`guest_tools`, another host refuses what is not :attr:`remote`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from vbench.core.metrics import Sample, is_known
from vbench.devices.base import Strict

Direction = Literal["h2g", "g2h"]


def both_directions() -> list[Direction]:
    return ["h2g", "g2h"]


class WorkloadKind:
    """One tool vbench can run as a workload. Subclasses set the class attributes below."""

    tool: ClassVar[str]                   # the scenario key: ``workloads[i].<tool>``
    spec: ClassVar[type[Strict]]          # its scenario section
    metrics: ClassVar[tuple[str, ...]]    # every metric it stores (each in the metric catalogue)
    headline: ClassVar[str]               # the one metric live lines and summaries show
    guest_tools: ClassVar[tuple[str, ...]] = ()  # programs the guest must have
    remote: ClassVar[bool] = False        # runs on (or against) another host (``--connect qemu+ssh``)
    needs_device: ClassVar[str | None] = None   # a device kind the variants must have under test

    def estimate_s(self, spec: Any, scn: Any) -> float:
        """Seconds one repetition takes (the tool's own time and its slack), for the budget, the
        plan and the live time-left estimate."""
        raise NotImplementedError

    def run(self, scn: Any, w: Any, target: Any) -> tuple[list[Sample], str]:
        """Execute one repetition on ``target`` (a :class:`vbench.run.executors.Target`):
        ``(samples, raw output)``. A kind that needs nothing above this layer implements it here;
        the built-in tools are executed by :mod:`vbench.run.executors` (they need the host and
        guest layers)."""
        raise NotImplementedError

    @property
    def runs_itself(self) -> bool:
        return type(self).run is not WorkloadKind.run

    def headline_of(self, spec: Any) -> str:
        """The headline metric of one workload of this kind (fio: bw for sequential jobs)."""
        return self.headline

    def validate_declaration(self) -> None:
        name = type(self).__name__
        for attr in ("tool", "spec", "metrics", "headline"):
            if not hasattr(self, attr):
                raise TypeError(f"workload {name} does not declare {attr}")
        unknown = [m for m in self.metrics if not is_known(m)]
        if unknown:
            raise TypeError(f"workload {self.tool}: metrics {unknown} are not in the metric "
                            f"catalogue (vbench.core.metrics.METRICS)")
        if self.headline not in self.metrics:
            raise TypeError(f"workload {self.tool}: headline {self.headline!r} is not one of its "
                            f"metrics")
