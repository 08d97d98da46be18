"""vbench ab: side values validated to one line, the scenario expanded per side, the side
override carried into the domain XML (golden file), and side A compared against side B."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vbench.run import ab
from vbench.core.errors import UserError
from vbench.scenario.schema import load_scenario_text

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "golden"

SCN = """\
name: t
device: disk
repetitions: 3
host_baseline: true
variants:
  - {name: virtio-blk, disk: {bus: virtio}}
  - {name: sata, disk: {bus: sata}}
workloads:
  - {name: rr, fio: {rw: randread}}
gate: {metrics: [iops], variants: [virtio-blk]}
"""


@pytest.fixture
def qemu_copy(tmp_path):
    exe = tmp_path / "qemu-copy"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return exe


def test_sides_parse_and_validate(qemu_copy, tmp_path):
    s = ab.parse_side([f"emulator={qemu_copy}", "rate_iops=200"], "b")
    assert s.emulator == str(qemu_copy) and s.rate_iops == 200
    assert ab.parse_side(f"emulator={qemu_copy},uri=qemu:///system", "a").uri == "qemu:///system"
    plain = tmp_path / "plain"
    plain.write_text("x")
    plain.chmod(0o644)
    bad = {
        "emulator=relative/qemu": "absolute path",
        f"emulator={tmp_path / 'none'}": "no such file",
        f"emulator={plain}": "not an executable file",
        f"emulator={tmp_path}": "no such file",  # a directory is not a file
        "emulator=/usr/bin/qemu;rm -rf /": "absolute path" if False else "no such file",
        "uri=qemu:///system;reboot": "not a libvirt URI",
        "uri=$(reboot)": "not a libvirt URI",
        "rate_iops=-5": "whole number",
        "colour=blue": "expected KEY=VALUE",
        "emulator": "expected KEY=VALUE",
    }
    for text, why in bad.items():
        with pytest.raises(UserError) as exc:
            ab.parse_side(text, "b")
        msg = str(exc.value)
        assert why in msg and "\n" not in msg, (text, msg)
    with pytest.raises(UserError, match="given twice"):
        ab.parse_side([f"emulator={qemu_copy}", f"emulator={qemu_copy}"], "a")
    with pytest.raises(UserError, match="must differ"):
        ab.check_sides(ab.parse_side(f"emulator={qemu_copy}", "a"),
                       ab.parse_side(f"emulator={qemu_copy}", "b"))


def test_expand_puts_each_variant_on_both_sides_interleaved():
    from vbench.run.session import plan

    scn = ab.expand(load_scenario_text(SCN))
    assert [v.name for v in scn.variants] == ["virtio-blk.a", "virtio-blk.b", "sata.a", "sata.b"]
    assert not scn.host_baseline
    assert scn.gate.variants == ["virtio-blk.a", "virtio-blk.b"]
    assert [scn.profile(v).disk.bus for v in scn.variants] == ["virtio", "virtio", "sata", "sata"]
    order = [u.variant for u in plan(scn, 2)]
    assert order[:4] == ["virtio-blk.a", "virtio-blk.b", "sata.a", "sata.b"]
    assert order[4:] == ["virtio-blk.b", "sata.a", "sata.b", "virtio-blk.a"]  # rotated
    assert ab.split_variant("virtio-blk.b") == ("virtio-blk", "b")
    assert ab.split_variant("v1.0") == ("v1.0", None)


def test_golden_domain_xml_of_a_side_with_another_emulator_and_kernel(monkeypatch, tmp_path):
    from vbench.guest import domain as virt
    from vbench.scenario.schema import GuestSpec, parse_profile

    files = virt.DomainFiles(Path("/var/lib/vbench/guests/vbench-ab/overlay.qcow2"),
                             Path("/var/lib/vbench/guests/vbench-ab/scratch.raw"),
                             Path("/var/lib/vbench/guests/vbench-ab/console.log"),
                             Path("/opt/kernels/vmlinuz-test"), Path("/opt/kernels/initrd-test"))
    xml = virt.domain_xml("vbench-ab", parse_profile("disk=virtio"), GuestSpec(), "qemu", files,
                          "console=ttyS0", "vbench-mgmt", "vbench-test", {"variant": "virtio-blk.b"},
                          emulator="/opt/qemu-test/bin/qemu-system-x86_64")
    golden = GOLDEN / "ab-side-emulator-qemu.xml"
    if os.environ.get("VBENCH_UPDATE_GOLDEN") == "1":
        golden.write_text(xml)
    assert xml == golden.read_text()
    assert xml.count("<emulator>/opt/qemu-test/bin/qemu-system-x86_64</emulator>") == 1
    # Without a side the XML is what it always was: no <emulator> (libvirt picks its default).
    plain = virt.domain_xml("vbench-ab", parse_profile("disk=virtio"), GuestSpec(), "qemu", files,
                            "console=ttyS0", "vbench-mgmt", "vbench-test", {})
    assert "<emulator>" not in plain
    hostile = virt.domain_xml("vbench-ab", parse_profile("disk=virtio"), GuestSpec(), "qemu",
                              files, "", "m", "t", {}, emulator="/tmp/a'<b>&c")
    assert "<emulator>/tmp/a'&lt;b&gt;&amp;c</emulator>" in hostile


def _frame(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for variant, xs in values.items():
        for i, x in enumerate(xs):
            rows.append({"run_id": "r1", "scenario": "t-ab", "variant": variant, "device": "disk",
                         "model": "virtio", "paravirtual": True, "workload": "rr",
                         "repetition": i, "metric": "iops", "value": x, "unit": "IO/s",
                         "accelerator": "tcg", "host": "h"})
    return pd.DataFrame(rows)


def test_side_a_against_side_b_gives_the_compare_verdicts():
    from vbench.stats.compare import Gate, compare

    rng = np.random.default_rng(5)
    same = _frame({"virtio-blk.a": list(1000 * rng.lognormal(0, 0.01, 6)),
                   "virtio-blk.b": list(1000 * rng.lognormal(0, 0.01, 6))})
    a, b = ab.side_frames(same)
    assert set(a["variant"]) == {"virtio-blk"} and set(a["run_id"]) == {"r1:A"}
    res = compare(a, b, gate=Gate(("iops",)))
    assert not res.gate_failed and res.table["status"].tolist() == ["unchanged"]
    slow = _frame({"virtio-blk.a": list(1000 * rng.lognormal(0, 0.01, 6)),
                   "virtio-blk.b": list(500 * rng.lognormal(0, 0.01, 6))})
    res = compare(*ab.side_frames(slow), gate=Gate(("iops",)))
    assert res.gate_failed and res.table["status"].tolist() == ["regression"]
    with pytest.raises(UserError):
        ab.side_frames(_frame({"virtio-blk": [1.0, 2.0, 3.0]}))


def test_pairs_for_adaptive_repetitions_and_rate_cap_executor():
    from vbench.run.executors import Target

    scn = ab.expand(load_scenario_text(SCN))
    rows = [{"workload": "rr", "metric": "iops", "variant": v, "value": x}
            for v, xs in (("virtio-blk.a", [1, 2, 3]), ("virtio-blk.b", [4, 5, 6]),
                          ("sata.a", [7, 8, 9])) for x in xs]
    pairs = ab.pair_groups(scn)(rows)
    assert len(pairs) == 1 and list(pairs[0][1]) == [4, 5, 6]  # gate.variants: virtio-blk only
    seen = []
    run = ab.with_rate_cap(lambda s, w, t: seen.append(w.fio.options.get("rate_iops")) or ([], ""),
                           {"b": ab.Side("b", rate_iops=300)})
    w = scn.workloads[0]
    run(scn, w, Target("virtio-blk.a"))
    run(scn, w, Target("virtio-blk.b"))
    assert seen == [None, 300] and "rate_iops" not in w.fio.options  # the scenario is untouched
