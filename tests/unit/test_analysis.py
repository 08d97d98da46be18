"""Statistics on synthetic samples whose answers are known (vbench.analysis)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers_runs

from vbench.stats import history, inference, summary  # noqa: E402
from vbench.core.metrics import SAMPLE_COLUMNS  # noqa: E402


def frame(groups: dict, *, run="r1", scenario="disk", workload="randread-4k-qd32", metric="iops",
          accelerator="kvm", host="lab1") -> pd.DataFrame:
    """groups: variant -> (device, model, paravirtual, values)."""
    rows = []
    for variant, (device, model, para, values) in groups.items():
        for i, v in enumerate(values):
            rows.append({"run_id": run, "scenario": scenario, "variant": variant, "device": device,
                         "model": model, "paravirtual": para, "workload": workload, "repetition": i,
                         "metric": metric, "value": float(v), "unit": "IO/s",
                         "accelerator": accelerator, "host": host})
    return pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))


def lognormal(level: float, n: int, cv: float, seed: int) -> np.ndarray:
    return level * np.exp(np.random.default_rng(seed).normal(0.0, cv, n))


# ---- prepare / summarize -------------------------------------------------------------------------

def test_prepare_fills_missing_columns_and_is_idempotent():
    df = pd.DataFrame({"variant": ["a", "b"], "metric": ["iops", "iops"], "value": ["1.5", "x"],
                       "paravirtual": ["True", "false"], "host": [None, ""]})
    d = summary.prepare(df)
    assert list(d["value"]) == [1.5]  # the unparsable value is dropped
    assert d.loc[0, "accelerator"] == "unknown" and d.loc[0, "host"] == "unknown"
    assert d.loc[0, "paravirtual"] is True or d.loc[0, "paravirtual"] == True  # noqa: E712
    assert summary.prepare(d) is d


def test_summarize_known_values_and_noisy_flag():
    df = pd.concat([
        frame({"virtio-blk": ("disk", "virtio", True, [100, 101, 102, 103, 104])}),
        frame({"ide": ("disk", "ide", False, [100, 60, 140, 100, 100])}),
    ])
    s = summary.summarize(df).set_index("variant")
    assert s.loc["virtio-blk", "n"] == 5
    assert s.loc["virtio-blk", "median"] == 102
    assert s.loc["virtio-blk", "mean"] == 102
    assert s.loc["virtio-blk", "min"] == 100 and s.loc["virtio-blk", "max"] == 104
    assert s.loc["virtio-blk", "cv"] == pytest.approx(np.std([100, 101, 102, 103, 104], ddof=1) / 102)
    assert not s.loc["virtio-blk", "noisy"]
    assert s.loc["ide", "noisy"]  # cv ~ 0.28
    assert s.loc["virtio-blk", "ci_low"] <= 102 <= s.loc["virtio-blk", "ci_high"]
    assert bool(s.loc["virtio-blk", "higher_is_better"])


def test_summarize_never_pools_accelerators():
    kvm = frame({"sata": ("disk", "sata", False, [4600, 4700, 4500])}, accelerator="kvm")
    tcg = frame({"sata": ("disk", "sata", False, [460, 470, 450])}, accelerator="tcg")
    s = summary.summarize(pd.concat([kvm, tcg]))
    assert len(s) == 2
    assert set(s["accelerator"]) == {"kvm", "tcg"}
    assert sorted(s["median"]) == [460, 4600]
    assert s["mixed_contexts"].all()


def test_summarize_by_run_keeps_runs_apart():
    a = frame({"sata": ("disk", "sata", False, [1, 2, 3])}, run="a")
    b = frame({"sata": ("disk", "sata", False, [10, 20, 30])}, run="b")
    assert len(summary.summarize(pd.concat([a, b]))) == 1  # same context: one group by default
    s = summary.summarize(pd.concat([a, b]), by_run=True)
    assert dict(zip(s["run_id"], s["median"])) == {"a": 2, "b": 20}


# ---- bootstrap ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10])
def test_boot_medians_equal_the_textbook_bootstrap(n):
    x = lognormal(100, n, 0.1, seed=n)
    draws = np.random.default_rng([inference.SEED, n, 0]).integers(0, n, size=(inference.N_BOOT, n))
    naive = np.median(np.sort(x)[draws], axis=1)
    np.testing.assert_allclose(inference.boot_medians(x), naive)


def test_bootstrap_is_deterministic():
    x, y = lognormal(10, 6, 0.05, 1), lognormal(5, 6, 0.05, 2)
    assert summary.ratio_ci(x, y) == summary.ratio_ci(x.copy(), y.copy())


def test_ratio_ci_covers_the_true_ratio_most_of_the_time():
    true = 11500 / 4600
    covered = 0
    for seed in range(40):
        x = lognormal(11500, 10, 0.03, seed)
        y = lognormal(4600, 10, 0.03, 1000 + seed)
        lo, hi = summary.ratio_ci(x, y)
        covered += lo <= true <= hi
    assert covered >= 35  # nominal 95% (Welch on logs: exact under log-normal noise)


# ---- significance -----------------------------------------------------------------------------------

def test_significance_is_welch_on_logs():
    from scipy import stats

    a, b = [100, 101, 99], [50, 51, 49]
    p, test = summary.significance(a, b)
    ref = stats.ttest_ind(np.log(a), np.log(b), equal_var=False).pvalue
    assert test == "welch-log" and p == pytest.approx(ref) and p < 0.001


def test_significance_handles_zeros_and_constants():
    assert summary.significance([0, 0, 0], [0, 0, 0])[0] == 1.0
    assert summary.significance([1, 1, 1], [2, 2, 2])[0] == 0.0
    p, test = summary.significance([0, 1, 2], [5, 6, 7])
    assert test == "welch" and p < 0.01
    assert summary.significance([1.0], [2.0, 3.0]) == (pytest.approx(math.nan, nan_ok=True), "none")


def test_adjust_p():
    p = [0.01, 0.04, 0.03, math.nan, 0.2]
    bh = inference.adjust_p(p, "bh")
    assert bh[0] == pytest.approx(0.04) and bh[1] == pytest.approx(0.04 * 4 / 3)
    assert bh[2] == pytest.approx(0.04 * 4 / 3) and math.isnan(bh[3]) and bh[4] == pytest.approx(0.2)
    holm = inference.adjust_p(p, "holm")
    assert holm[0] == pytest.approx(0.04) and holm[2] == pytest.approx(0.09)
    assert holm[1] == pytest.approx(0.09) and holm[4] == pytest.approx(0.2)
    assert inference.adjust_p(p, "none")[:3] == p[:3]


# ---- ratios ----------------------------------------------------------------------------------------

def disk_frame(n=8, seed=0, **kw):
    return pd.concat([
        frame({"virtio-blk": ("disk", "virtio", True, lognormal(11500, n, 0.03, seed)),
               "sata": ("disk", "sata", False, lognormal(4600, n, 0.03, seed + 1)),
               "ide": ("disk", "ide", False, lognormal(3000, n, 0.03, seed + 2)),
               "host": ("host", "host", False, lognormal(40000, n, 0.03, seed + 3))}, **kw),
        frame({"virtio-blk": ("disk", "virtio", True, lognormal(32e6 / 11500, n, 0.03, seed + 4)),
               "sata": ("disk", "sata", False, lognormal(32e6 / 4600, n, 0.03, seed + 5)),
               "host": ("host", "host", False, lognormal(32e6 / 40000, n, 0.03, seed + 6))},
              metric="clat_p50", **kw),
    ], ignore_index=True)


def test_ratios_virtio_against_each_emulated_variant():
    r = summary.ratios(disk_frame())
    iops = r[r["metric"] == "iops"].set_index("reference")
    assert set(iops.index) == {"sata", "ide"}  # the host baseline is not an emulated device
    assert set(r["variant"]) == {"virtio-blk"}
    assert iops.loc["sata", "ratio"] == pytest.approx(2.5, rel=0.05)
    assert iops.loc["sata", "ci_low"] <= 2.5 <= iops.loc["sata", "ci_high"]
    assert iops.loc["sata", "verdict"] == "better" and iops.loc["sata", "significant"]
    lat = r[(r["metric"] == "clat_p50")].iloc[0]
    assert lat["ratio"] == pytest.approx(0.4, rel=0.05)
    assert lat["better"] and lat["verdict"] == "better"  # lower latency is better


def test_ratios_reference_filter():
    r = summary.ratios(disk_frame(), reference="ide")
    assert set(r["reference"]) == {"ide"}


def test_ratios_same_device_kind_only():
    df = pd.concat([disk_frame(),
                    frame({"e1000": ("nic", "e1000", False, [1, 2, 3])})])
    assert "e1000" not in set(summary.ratios(df)["reference"])


def test_ratios_never_pool_kvm_and_tcg():
    kvm = disk_frame(seed=0, accelerator="kvm")
    tcg = disk_frame(seed=10, accelerator="tcg")
    tcg["value"] = tcg["value"] / 10  # TCG is much slower in absolute terms
    r = summary.ratios(pd.concat([kvm, tcg]))
    assert set(r["accelerator"]) == {"kvm", "tcg"}
    assert r["mixed_contexts"].all()
    for accel, part in (("kvm", kvm), ("tcg", tcg)):
        alone = summary.ratios(part).set_index(["metric", "reference"])["ratio"]
        mixed = r[r["accelerator"] == accel].set_index(["metric", "reference"])["ratio"]
        pd.testing.assert_series_equal(alone.sort_index(), mixed.sort_index())


def test_ratios_with_tiny_samples_are_not_significant_by_rank_alone():
    df = frame({"virtio-blk": ("disk", "virtio", True, [1.0]),
                "sata": ("disk", "sata", False, [2.0, 2.1])})
    row = summary.ratios(df).iloc[0]
    assert row["verdict"] == "insufficient" and math.isnan(row["p_value"])


def test_host_fractions():
    h = summary.host_fractions(disk_frame())
    iops = h[h["metric"] == "iops"].set_index("variant")
    assert set(iops.index) == {"virtio-blk", "sata", "ide"}
    assert iops.loc["virtio-blk", "fraction"] == pytest.approx(11500 / 40000, rel=0.05)
    assert iops.loc["virtio-blk", "performance"] == pytest.approx(iops.loc["virtio-blk", "fraction"])
    lat = h[h["metric"] == "clat_p50"].set_index("variant")
    # latency 3.5x the host's = 29% of host-native performance
    assert lat.loc["virtio-blk", "fraction"] == pytest.approx(40000 / 11500, rel=0.05)
    assert lat.loc["virtio-blk", "performance"] == pytest.approx(11500 / 40000, rel=0.05)


def test_host_fractions_absent_without_baseline():
    df = disk_frame()
    assert len(summary.host_fractions(df[df["variant"] != "host"])) == 0


# ---- change points ----------------------------------------------------------------------------------

def test_change_point_at_a_step():
    rng = np.random.default_rng(3)
    series = list(1000 * (1 + rng.normal(0, 0.01, 8))) + list(800 * (1 + rng.normal(0, 0.01, 7)))
    assert history.change_points(series) == [8]


def test_two_steps():
    series = [100, 101, 99, 100, 130, 131, 129, 130, 100, 99, 101, 100]
    assert history.change_points(series) == [4, 8]


def test_no_change_points_in_noise_or_for_one_outlier():
    rng = np.random.default_rng(4)
    assert history.change_points(list(1000 * (1 + rng.normal(0, 0.02, 30)))) == []
    assert history.change_points([100, 100, 101, 99, 160, 100, 101, 99]) == []
    assert history.change_points([5.0]) == [] and history.change_points([]) == []


def test_small_steps_below_min_rel_step_are_ignored():
    assert history.change_points([100, 100, 100, 102, 102, 102]) == []
    assert history.change_points([100, 100, 100, 102, 102, 102], min_rel_step=0.01) == [3]


def test_change_points_skip_nan_positions():
    series = [100, math.nan, 100, 101, 70, 71, math.nan, 70]
    assert history.change_points(series) == [4]


@settings(max_examples=50, deadline=None)
@given(st.floats(1, 1e6), st.lists(st.floats(-0.004, 0.004), min_size=0, max_size=40))
def test_flat_series_never_has_change_points(level, noise):
    assert history.change_points([level * (1 + e) for e in noise]) == []


def test_history_table():
    parts = []
    for i, level in enumerate([100, 101, 99, 100, 80, 79, 81]):
        parts.append(frame({"sata": ("disk", "sata", False, [level, level, level])}, run=f"r{i}"))
    points, changes = history.history_table(pd.concat(parts), run_order=[f"r{i}" for i in range(7)])
    assert list(points["median"]) == [100, 101, 99, 100, 80, 79, 81]
    assert len(changes) == 1
    ch = changes.iloc[0]
    assert ch["run_id"] == "r4" and ch["position"] == 4
    assert ch["before"] == pytest.approx(100) and ch["after"] == pytest.approx(80)
    assert ch["step"] == pytest.approx(-0.2)


def test_ratio_with_a_zero_reference_is_undefined():
    df = frame({"virtio-net": ("nic", "virtio", True, [1.0, 2.0, 1.0, 2.0, 1.0]),
                "e1000": ("nic", "e1000", False, [0.0, 0.0, 0.0, 0.0, 0.0])}, metric="retransmits")
    row = summary.ratios(df).iloc[0]
    assert math.isnan(row["ratio"]) and row["verdict"] == "undefined"


def fs_frame(n=5, **kw):
    """Shared folders: every variant is paravirtual (virtio-fs against 9p), plus another scenario."""
    return pd.concat([
        frame({"virtiofs": ("fs", "virtiofs", True, lognormal(20000, n, 0.03, 11)),
               "9p-mapped": ("fs", "9p", True, lognormal(5000, n, 0.03, 12)),
               "9p-passthrough": ("fs", "9p", True, lognormal(5500, n, 0.03, 13))},
              scenario="fs", **kw),
        disk_frame(n=n)], ignore_index=True)


def test_all_paravirtual_scenario_has_no_pairs_without_a_reference():
    r = summary.ratios(fs_frame())
    assert set(r["scenario"]) == {"disk"}


def test_declared_reference_sets_every_other_variant_against_it():
    r = summary.ratios(fs_frame(), references={"fs": "virtiofs"})
    fs = r[r["scenario"] == "fs"].set_index("variant")
    assert set(fs.index) == {"9p-mapped", "9p-passthrough"}
    assert set(fs["reference"]) == {"virtiofs"}
    assert fs.loc["9p-mapped", "ratio"] == pytest.approx(0.25, rel=0.05)
    assert fs.loc["9p-mapped", "verdict"] == "worse"
    # the other scenario keeps the paravirtual/emulated rule
    disk = r[r["scenario"] == "disk"]
    assert set(disk["variant"]) == {"virtio-blk"} and set(disk["reference"]) == {"sata", "ide"}


def test_declared_reference_may_be_emulated_or_paravirtual():
    r = summary.ratios(disk_frame(), references={"disk": "sata"})
    assert set(r["reference"]) == {"sata"}
    assert set(r["variant"]) == {"virtio-blk", "ide"}  # ide against sata too; never the host
