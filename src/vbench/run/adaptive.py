"""Adaptive repetitions: measure until the gated ratios are known well enough, within bounds.

A scenario may say ``repetitions: {min: 3, max: 10, target_ci: 5%}``. The run loop measures
``min`` interleaved rounds (every variant once per round), then asks :class:`Stopper` after each
further round whether every *gated* ratio's 95 % interval is narrower than ``target_ci`` (a
relative half-width: 5 % means the interval lies within +-5 % of its estimate); it stops there, or
at ``max`` rounds. This is what the Phoronix Test Suite does for its error margin, applied to what
the gate decides on.

Which ratio: in a plain run, the ratio a later ``vbench compare`` will take against a baseline run
of the same size and spread (Welch's t on logs, so the interval of log(new/base) has a standard
error of ``s * sqrt(2 / n)``); in an A/B run (``vbench ab``), the ratio of side B to side A itself.
Which rows are gated: those ``vbench compare`` gates (the scenario's ``gate:``, else compare's
default gated metrics); never the host baseline.

Pure decisions on sample rows: the run loop (and tests) feed rows in, nothing here measures.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from vbench.core.metrics import Sample
from vbench.results.record import RunRecord
from vbench.scenario.schema import Scenario
from vbench.run.session import Executor, GuestFactory, RunSession, Say, Unit, plan
from vbench.results.rundir import RunDir, iter_sample_rows
from vbench.workloads.base import stored_names


def relative_halfwidth(group) -> float:
    """Relative half-width of a gated ratio's 95 % interval: a single sample (against a baseline
    of the same size and spread) or a ``(a, b)`` pair (see verdict.interval_halfwidth)."""
    from vbench.stats.verdict import interval_halfwidth

    return interval_halfwidth(group)


def _base_workload(scn, stored: str) -> str:
    """Network workloads store "<name>-h2g"/"<name>-g2h": the scenario's workload name."""
    for w in scn.workloads:
        if stored in stored_names(w.name):
            return w.name
    return stored


def single_groups(scn, rows: Iterable[dict]) -> dict[tuple, list[float]]:
    """Gated (workload, metric, variant) -> values so far: the rows ``vbench compare`` will gate
    (the scenario's ``gate:``, its metrics defaulting to the device kind's; never the host
    baseline)."""
    from vbench.stats.compare import Gate

    gate = Gate.from_spec(getattr(scn, "gate", None), scn.device)
    out: dict[tuple, list[float]] = {}
    for r in rows:
        if not gate.covers(_base_workload(scn, r["workload"]), r["metric"], r["variant"]):
            continue
        out.setdefault((r["workload"], r["metric"], r["variant"]), []).append(float(r["value"]))
    return out


def groups_of_run(scn, rows: Iterable[dict]) -> list:
    return [np.asarray(v) for v in single_groups(scn, rows).values()]


@dataclass(frozen=True)
class Plan:
    """How many rounds: ``fixed`` when ``target_ci`` is None (min == max then)."""

    min: int
    max: int
    target_ci: float | None = None

    @property
    def adaptive(self) -> bool:
        return self.target_ci is not None and self.max > self.min


@dataclass
class Stopper:
    """Decides after each round whether to measure another one.

    ``groups`` turns the sample rows measured so far into the gated groups (single arrays or
    ``(a, b)`` pairs, see :func:`relative_halfwidth`).
    """

    plan: Plan
    groups: Callable[[list[dict]], Sequence]
    widest: float = math.nan
    reason: str = ""

    def done_after(self, rounds: int, rows: Callable[[], list[dict]]) -> bool:
        """True when no further round is needed after ``rounds`` complete rounds (``rows`` reads
        the samples stored so far; it is only called when the answer depends on them)."""
        if rounds < self.plan.min:
            return False
        if not self.plan.adaptive:
            return True
        target = self.plan.target_ci
        assert target is not None
        narrow = self._measure(rows()) and self.widest <= target
        if narrow:
            self.reason = (f"every gated interval within ±{target * 100:g} % after {rounds} rounds "
                           f"(widest ±{self.widest * 100:.1f} %)")
        elif rounds >= self.plan.max:
            self.reason = (f"stopped at the maximum of {rounds} rounds with the widest gated "
                           f"interval at ±{self.widest * 100:.1f} % (target ±{target * 100:g} %)")
        return narrow or rounds >= self.plan.max

    def _measure(self, rows: list[dict]) -> bool:
        widths = [relative_halfwidth(g) for g in self.groups(rows)]
        if not widths:
            self.widest = math.nan
            return False
        finite = [w for w in widths if math.isfinite(w)]
        self.widest = max(finite) if len(finite) == len(widths) else math.inf
        return math.isfinite(self.widest)


class AdaptiveSession(RunSession):
    """A :class:`~vbench.run.session.RunSession` that measures ``plan.min`` interleaved rounds, then
    one more round at a time (appended to the running plan, the rotation going on) until the
    :class:`Stopper` is satisfied or ``plan.max`` rounds are measured. The record's
    ``repetitions`` follows the rounds planned so far (so ``--resume`` completes those), and
    ``adaptive`` says how the run ended.

    ``groups`` maps the stored sample rows to the gated groups (default: a plain run's gated
    (workload, metric, variant) samples; ``vbench ab`` passes side-vs-side pairs).
    """

    def __init__(self, scn: Scenario, rd: RunDir, rec: RunRecord, guests: GuestFactory,
                 execute: Executor, say: Say, rounds: Plan,
                 groups: Callable[[list[dict]], Sequence] | None = None, **kw) -> None:
        super().__init__(scn, rd, rec, guests, execute, say, rounds.min, **kw)
        self.stopper = Stopper(rounds, groups or (lambda rows: groups_of_run(scn, rows)))
        self.rounds = rounds.min
        self._left = Counter(u.repetition for u in self.planned)
        self._note()

    def after_unit(self, unit: Unit, samples: list[Sample] | None) -> None:
        self._left[unit.repetition] -= 1
        if self._left[unit.repetition] > 0 or unit.repetition != self.rounds - 1:
            return
        # The newest round is complete (rounds run in order, so all earlier ones are too).
        if self.stopper.done_after(self.rounds, lambda: list(iter_sample_rows(self.rd.path))):
            self.say(f"adaptive repetitions: {self.stopper.reason}")
            self._note()
            return
        target = self.stopper.plan.target_ci or 0
        self.say(f"after {self.rounds} rounds the widest gated interval is "
                 f"±{self.stopper.widest * 100:.1f} % (target ±{target * 100:g} %): one more "
                 f"round, at most {self.stopper.plan.max}")
        more = plan(self.scn, 1, first=self.rounds)
        self.rounds += 1
        self._left.update(u.repetition for u in more)
        self.extend(more)
        self._note()

    def _note(self) -> None:
        p, st = self.stopper.plan, self.stopper
        self.rec.repetitions = self.rounds
        # The record keeps fields it does not declare (pydantic extra="allow").
        self.rec.adaptive = {  # type: ignore[attr-defined]
            "min": p.min, "max": p.max, "target_ci": p.target_ci, "rounds": self.rounds,
            "widest_interval": st.widest if math.isfinite(st.widest) else None,
            "reason": st.reason}
        self.rd.write_record(self.rec)
