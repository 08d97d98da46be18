"""Adaptive repetitions: the stopping rule on its own, and the run loop (RunSession) with fakes at
its seams (tests/unit/test_session.py's guest factory, a noisy executor), so the rounds really
measured are counted."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vbench.run import adaptive
from vbench.core.metrics import Sample
from vbench.scenario.schema import load_scenario_text

SCN = """\
name: t
device: disk
repetitions: {reps}
variants:
  - {{name: virtio-blk, disk: {{bus: virtio}}}}
  - {{name: sata, disk: {{bus: sata}}}}
workloads:
  - {{name: rr, fio: {{rw: randread}}}}
"""


def rows_for(values: dict[str, list[float]], metric: str = "iops", workload: str = "rr") -> list[dict]:
    return [{"workload": workload, "metric": metric, "variant": v, "value": x}
            for v, xs in values.items() for x in xs]


# ---- the rule ------------------------------------------------------------------------------------

def test_halfwidth_of_one_group_is_that_of_a_same_sized_comparison():
    x = np.array([100.0, 105.0, 95.0])
    s = np.std(np.log(x), ddof=1)
    from scipy import stats

    want = math.expm1(stats.t.ppf(0.975, 4) * s * math.sqrt(2 / 3))
    assert adaptive.relative_halfwidth(x) == pytest.approx(want)
    assert math.isnan(adaptive.relative_halfwidth(np.array([5.0])))
    assert math.isnan(adaptive.relative_halfwidth(np.array([0.0, 1.0, 2.0])))  # no log scale


def test_halfwidth_of_a_pair_is_the_welch_interval_of_their_ratio():
    a, b = np.array([100.0, 102.0, 98.0, 101.0]), np.array([90.0, 93.0, 88.0, 91.0])
    w = adaptive.relative_halfwidth((a, b))
    assert 0 < w < 0.05
    assert adaptive.relative_halfwidth((a, a * 0 + 100)) < w  # one side without spread: narrower
    assert adaptive.relative_halfwidth((a, a)) == pytest.approx(adaptive.relative_halfwidth((a, a)))


def test_only_gated_rows_of_guest_variants_count():
    scn = load_scenario_text(SCN.format(reps="{min: 3, max: 10, target_ci: 5%}"))
    rows = (rows_for({"virtio-blk": [100, 101, 99], "host": [1, 50, 100]})
            + rows_for({"virtio-blk": [1, 500, 50]}, metric="bw")          # not gated
            + rows_for({"virtio-blk": [200, 201, 199]}, metric="clat_p99"))
    groups = adaptive.single_groups(scn, rows)
    assert set(groups) == {("rr", "iops", "virtio-blk"), ("rr", "clat_p99", "virtio-blk")}


def test_stopper_never_reads_samples_for_a_fixed_number():
    reads = []
    stop = adaptive.Stopper(adaptive.Plan(5, 5), lambda rows: [])
    assert not stop.done_after(4, lambda: reads.append(1) or [])
    assert stop.done_after(5, lambda: reads.append(1) or [])
    assert reads == []


# ---- the run loop (RunSession) with fakes at its seams: guest factory and executor ----------------

class NoisyExecutor:
    """The executor seam: iops with lognormal noise of a chosen CV per variant, plus an ungated
    metric that is pure noise (it must not keep the run going)."""

    def __init__(self, cv: dict[str, float], seed: int = 3) -> None:
        self.cv, self.rng, self.calls = cv, np.random.default_rng(seed), []

    def __call__(self, scn, w, target):
        self.calls.append((target.variant, w.name))
        c = self.cv.get(target.variant, 0.01)
        return [Sample(w.name, "iops", 1000 * float(self.rng.lognormal(0, c)), "IO/s"),
                Sample(w.name, "bw", float(self.rng.uniform(1, 1000)), "MiB/s")], "raw"


def adaptive_session(tmp_path, reps: str, ex, **kw):
    from vbench.run import runner
    from vbench.results import rundir as store
    from vbench.results.record import Environment
    from tests.unit.test_session import FakeGuests

    scn = load_scenario_text(SCN.format(reps=reps))
    rounds = adaptive.Plan(scn.min_repetitions, scn.max_repetitions, scn.target_ci)
    rd = store.RunDir.create(tmp_path, "run-1")
    rec = runner._initial_record(rd.run_id, scn, "t.yaml", "", Environment(host="h", accelerator="tcg"),
                                 rounds.min)
    rd.write_record(rec)
    lines: list[str] = []
    guests = FakeGuests()
    s = adaptive.AdaptiveSession(scn, rd, rec, guests, ex, lines.append, rounds, **kw)
    s.run()
    return store.load_record(rd.path), lines, guests


def test_quiet_variants_stop_at_the_minimum(tmp_path):
    ex = NoisyExecutor({"virtio-blk": 0.002, "sata": 0.002})
    rec, lines, guests = adaptive_session(tmp_path, "{min: 3, max: 8, target_ci: 5%}", ex)
    assert len(ex.calls) == 6  # 3 rounds x 2 variants
    assert rec.status == "complete" and rec.repetitions == 3 and rec.missing_units == 0
    assert rec.adaptive["rounds"] == 3 and "within ±5 %" in rec.adaptive["reason"]
    assert guests.boots == [("virtio-blk", None), ("sata", None)]  # one boot per variant


def test_a_noisy_gated_row_adds_interleaved_rounds_up_to_the_maximum(tmp_path):
    ex = NoisyExecutor({"virtio-blk": 0.002, "sata": 0.4})
    rec, lines, _ = adaptive_session(tmp_path, "{min: 3, max: 6, target_ci: 5%}", ex)
    assert len(ex.calls) == 12
    assert [v for v, _ in ex.calls[:6]] == ["virtio-blk", "sata", "sata", "virtio-blk",
                                            "virtio-blk", "sata"]  # the rotation goes on
    assert [v for v, _ in ex.calls[6:8]] == ["sata", "virtio-blk"]  # in the added rounds too
    assert rec.status == "complete" and rec.repetitions == 6
    assert "maximum of 6 rounds" in rec.adaptive["reason"]
    assert sum("one more round" in line for line in lines) == 3


def test_moderate_noise_stops_in_between_once_the_interval_is_narrow(tmp_path):
    ex = NoisyExecutor({"virtio-blk": 0.03, "sata": 0.03}, seed=7)
    rec, _, _ = adaptive_session(tmp_path, "{min: 3, max: 30, target_ci: 2.5%}", ex)
    assert 3 < rec.repetitions < 30 and len(ex.calls) == 2 * rec.repetitions
    assert rec.adaptive["widest_interval"] <= 0.025 and "within ±2.5 %" in rec.adaptive["reason"]


def test_pairs_decide_for_an_ab_run(tmp_path):
    # The groups seam: side-vs-side pairs instead of single variants.
    ex = NoisyExecutor({"virtio-blk": 0.002, "sata": 0.002})

    def pairs(rows):
        g = adaptive.single_groups(load_scenario_text(SCN.format(reps=3)), rows)
        return [(np.asarray(g[("rr", "iops", "virtio-blk")]), np.asarray(g[("rr", "iops", "sata")]))]

    rec, _, _ = adaptive_session(tmp_path, "{min: 3, max: 8, target_ci: 1%}", ex, groups=pairs)
    assert rec.repetitions == 3 and rec.adaptive["widest_interval"] < 0.01
