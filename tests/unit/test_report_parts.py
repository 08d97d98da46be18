"""Pieces of the report package that need no page: palette, flags, derived metrics, the forest's
orientation, the figure registry and the terminal summary."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers_runs

from vbench.report import figures  # noqa: E402
from vbench.report.data import with_cpu_per_gbit, with_cpu_per_io  # noqa: E402
from vbench.report.forest import advantage  # noqa: E402
from vbench.report.palette import EMU_COLOURS, HOST_COLOUR, PV_COLOURS, Palette  # noqa: E402


def test_a_variant_has_one_colour_whatever_else_is_on_the_page():
    small = Palette([("virtio-blk", True, False, "disk"), ("sata", False, False, "disk")])
    big = Palette([("virtio-blk", True, False, "disk"), ("virtio-scsi", True, False, "disk"),
                   ("ide", False, False, "disk"), ("sata", False, False, "disk"),
                   ("e1000", False, False, "nic"), ("host", False, True, "host")])
    assert small["virtio-blk"] == big["virtio-blk"] == PV_COLOURS[0]
    assert small["sata"] == big["sata"] == EMU_COLOURS[0]
    assert big["host"] == HOST_COLOUR
    # unknown names: paravirtual ones blue/green, emulated ones orange/red, distinct per kind
    odd = Palette([("my-pv", True, False, "disk"), ("my-pv2", True, False, "disk"),
                   ("my-emu", False, False, "disk")])
    assert odd["my-pv"] in PV_COLOURS and odd["my-pv2"] in PV_COLOURS
    assert odd["my-pv"] != odd["my-pv2"] and odd["my-emu"] in EMU_COLOURS


def test_advantage_is_turned_for_lower_is_better():
    assert advantage(2.0, 1.5, 2.5, True) == (2.0, 1.5, 2.5)
    adv, lo, hi = advantage(0.5, 0.4, 0.8, False)  # virtio latency half the emulated one
    assert adv == pytest.approx(2.0) and lo == pytest.approx(1.25) and hi == pytest.approx(2.5)


def test_guest_cpu_per_io_is_derived_per_repetition():
    rows = []
    for rep, (usr, sys_, iops) in enumerate([(10.0, 40.0, 5000.0), (20.0, 30.0, 10000.0)]):
        for metric, value in (("guest_cpu_usr", usr), ("guest_cpu_sys", sys_), ("iops", iops)):
            rows.append({"run_id": "r", "scenario": "s", "variant": "v", "device": "disk",
                         "model": "virtio", "paravirtual": True, "workload": "w",
                         "repetition": rep, "metric": metric, "value": value, "unit": "",
                         "accelerator": "kvm", "host": "h"})
    out = with_cpu_per_io(pd.DataFrame(rows))
    per_io = out[out["metric"] == "guest_cpu_per_io"].sort_values("repetition")
    # 50 % of a CPU for 5,000 IO/s = 100 us per I/O; 50 % for 10,000 IO/s = 50 us
    assert per_io["value"].tolist() == pytest.approx([100.0, 50.0])
    assert set(per_io["unit"]) == {"us"} and per_io["paravirtual"].all()


def test_guest_cpu_per_gbit_takes_the_guest_side_of_each_direction():
    rows = []
    # (workload, sender %, receiver %, Mbit/s): the guest receives h2g and sends g2h
    for wl, snd, rcv, mbit in (("tcp-1-h2g", 5.0, 40.0, 2000.0), ("tcp-1-g2h", 30.0, 9.0, 1500.0),
                               ("udp", 10.0, 10.0, 100.0)):
        for metric, value in (("sender_cpu", snd), ("receiver_cpu", rcv), ("throughput", mbit)):
            rows.append({"run_id": "r", "scenario": "s", "variant": "virtio-net", "device": "nic",
                         "model": "virtio", "paravirtual": True, "workload": wl,
                         "repetition": 0, "metric": metric, "value": value, "unit": "",
                         "accelerator": "kvm", "host": "h"})
    out = with_cpu_per_gbit(with_cpu_per_io(pd.DataFrame(rows)))
    per = out[out["metric"] == "guest_cpu_per_gbit"].set_index("workload")["value"].to_dict()
    # h2g: 40 % of a CPU for 2 Gbit/s = 0.2 s per Gbit; g2h: 30 % for 1.5 Gbit/s = 0.2 s per
    # Gbit; no direction in the name: not derived
    assert per == pytest.approx({"tcp-1-h2g": 0.2, "tcp-1-g2h": 0.2})
    assert set(out.loc[out["metric"] == "guest_cpu_per_gbit", "unit"]) == {"s/Gbit"}
    assert "guest_cpu_per_io" not in set(out["metric"])  # no fio samples, nothing per I/O


def test_cpu_per_unit_of_work_sits_next_to_raw_cpu_and_in_the_headline():
    from vbench.report.data import metric_order
    from vbench.report.tables import HEADLINE_METRICS

    order = metric_order(["iops", "guest_cpu_per_io", "guest_cpu_sys", "guest_cpu_usr",
                          "throughput", "guest_cpu_per_gbit", "receiver_cpu", "sender_cpu"])
    assert order.index("guest_cpu_per_io") == order.index("guest_cpu_sys") + 1
    assert order.index("guest_cpu_per_gbit") == order.index("receiver_cpu") + 1
    assert {"guest_cpu_per_io", "host_cpu_per_io", "guest_cpu_per_gbit",
            "host_cpu_per_gbit"} <= set(HEADLINE_METRICS)


def test_every_figure_kind_is_registered_once_with_a_section():
    names = [k.draw.__name__ for k in figures.REGISTRY]
    assert len(names) == len(set(names))
    assert {"metric_figure", "latency_figure", "network_figure", "host_figure", "balloon_figure",
            "entropy_figure"} <= set(names)


STORED = Path(__file__).resolve().parents[1] / "data" / "runs" / "20261126-113024-smoke-disk"


def test_terminal_summary_ends_with_ratios_and_verdicts():
    from vbench.report.terminal import headline_lines

    from vbench.stats import summary
    from vbench.core import fmt
    from vbench.results.rundir import load_samples

    lines = headline_lines(STORED)
    text = "\n".join(lines)
    iops = [ln for ln in lines if "randread-4k-qd32" in ln and "IOPS" in ln]
    assert len(iops) == 1 and "virtio-blk vs sata" in iops[0] and iops[0].rstrip().endswith("better")
    r = summary.ratios(load_samples(STORED))
    want = r[(r["workload"] == "randread-4k-qd32") & (r["metric"] == "iops")].iloc[0]
    assert fmt.ratio(want["ratio"]) in iops[0]  # the stored run's ratio of medians
    assert "Guest CPU per I/O" in text and "Host CPU (QEMU) per I/O" in text
    assert re.match(r"paravirtual better in \d of 8, worse in 0", lines[-2])
    assert "TCG's, not KVM's" in lines[-1]


def test_terminal_summary_of_a_run_without_pairs_is_empty(tmp_path):
    from helpers_runs import write_run
    from vbench.report.terminal import headline_lines

    run = write_run(tmp_path, "one", variants={"virtio-blk": ("disk", "virtio", True, 1000.0)})
    assert headline_lines(run) == []
