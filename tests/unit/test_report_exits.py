"""The report's VM-exits table (issue 22): next to host CPU per I/O for KVM runs, a dash with its
reason for an absent number (never 0), and no table at all for TCG runs."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers_runs

from helpers_runs import write_run  # noqa: E402
from vbench.report import build_report  # noqa: E402

LEVELS = {"iops": 1.0, "host_cpu_per_io": 40.0, "exits_per_op": 2.5, "io_exits_per_op": 0.002,
          "mmio_exits_per_op": 0.05, "irq_injections_per_op": 1.1}
METRICS = list(LEVELS)  # halt_exits_per_op left out: absent in every unit
WHY = "this kernel has no halt_exits counter in /sys/kernel/debug/kvm/41732-12"


def exits_run(root: Path, run_id: str, accelerator: str) -> Path:
    run = write_run(root, run_id, accelerator=accelerator, reps=3,
                    variants={"virtio-blk": ("disk", "virtio", True, 11500.0),
                              "sata": ("disk", "sata", False, 4600.0)},
                    workloads={"randread-4k-qd32": METRICS},
                    level=lambda v, w, m: v * LEVELS[m] if m == "iops" else LEVELS[m] * 1e4 / v)
    meta = json.loads((run / "run.json").read_text())
    for v in meta["variants"].values():
        v["kvm_exits_absent"] = {"halt_exits_per_op": WHY}
    (run / "run.json").write_text(json.dumps(meta))
    return run


def section(text: str) -> str:
    m = re.search(r'<h2 id="vm-exits">.*?</table>(.*?</p>)?', text, re.S)
    return m.group(0) if m else ""


def test_a_kvm_run_shows_exits_per_io_next_to_host_cpu(tmp_path):
    run = exits_run(tmp_path / "results", "20261205-070000-disk", "kvm")
    text = build_report([run], tmp_path / "report").read_text()
    table = section(text)
    assert table and 'href="#vm-exits"' in text
    for label in ("Host CPU (QEMU) per I/O (us)", "VM exits per I/O (exits/op)",
                  "MMIO exits per I/O (exits/op)", "Injected interrupts per I/O (irqs/op)",
                  "HLT exits per I/O (exits/op)"):
        assert label in table, label
    assert table.count("<tr>") == 1 + 2  # header, virtio-blk, sata
    # the halt column is a dash that says why, never a 0
    assert table.count(f'title="{WHY}"') == 2 and "Absent: " in table


def test_a_tcg_run_has_no_exits_table(tmp_path):
    run = write_run(tmp_path / "results", "20261205-070000-disk", accelerator="tcg", reps=3)
    text = build_report([run], tmp_path / "report").read_text()
    assert 'id="vm-exits"' not in text and 'href="#vm-exits"' not in text
