#!/usr/bin/env python3
"""Overhead of vbench on the disk scenario (run as root with the lab up and the image built).

1. Share of `vbench run` wall time spent inside workloads (target: >= 75 % for disk.yaml).
2. vbench's reported IOPS against the same fio job typed by hand in an identically configured
   guest and read straight from fio's JSON without vbench's parser (target: within 5 %).

    python bench/bench_overhead.py                 # runs scenarios/disk.yaml first (~15 min)
    python bench/bench_overhead.py --run results/X  # uses an existing run of disk.yaml
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = "randread-4k-qd32"
VARIANT = "virtio-blk"


def run_disk(results: Path) -> Path:
    cp = subprocess.run([sys.executable, "-m", "vbench", "run", str(ROOT / "scenarios/disk.yaml"),
                         "--results", str(results), "--no-report"], cwd=ROOT, text=True,
                        capture_output=True)
    if cp.returncode != 0:
        sys.exit(f"vbench run failed ({cp.returncode}): {cp.stderr.strip()[-500:]}")
    return Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])


def by_hand(meta: dict, reps: int) -> list[float]:
    """Boot a guest exactly like the run's virtio-blk variant and type the fio job by hand."""
    from vbench.host import images, lab
    from vbench.host import ssh as remote
    from vbench.scenario.schema import load_scenario_text
    from vbench.guest.domain import Guest

    scn = load_scenario_text(meta["scenario"]["text"])
    variant = next(v for v in scn.variants if v.name == VARIANT)
    lb = lab.current()
    img = images.require("default")
    acc = lb.host.accelerator(img.kernel)
    pkey, pub = remote.new_client_key()
    w = meta["workloads"][WORKLOAD]["options"]
    o = w["options"]
    cmd = (f"fio --name=byhand --filename=/dev/vdb --rw={o['rw']} --bs={o['bs']} "
           f"--iodepth={o['iodepth']} --ioengine={o['ioengine']} --direct={o['direct']} "
           f"--time_based --runtime={w['runtime']} --ramp_time={w['ramp_time']} --output-format=json")
    print(f"by hand: {cmd}")
    out = []
    with Guest("vbench-bench-byhand", lb, img, scn.profile(variant), scn.guest, acc, pkey, pub,
               tags={"run": "bench", "variant": VARIANT}) as g:
        for i in range(reps):
            res = g.ssh.run(cmd, timeout=300, check=True)
            iops = json.loads(res.stdout[res.stdout.index("{"):])["jobs"][0]["read"]["iops"]
            print(f"  by hand #{i + 1}: {iops:,.0f} IOPS")
            out.append(iops)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="an existing run directory of scenarios/disk.yaml")
    ap.add_argument("--hand-reps", type=int, default=3)
    args = ap.parse_args()
    run_dir = args.run or run_disk(Path(tempfile.mkdtemp(prefix="vbench-bench-")))
    from vbench.results.rundir import load_meta

    meta = load_meta(run_dir)  # versioned and checked, like every read of a run
    timing = meta["timing"][-1]
    share = timing["workload_share"]
    print(f"run {run_dir}: wall {timing['wall_s']:.0f} s, inside workloads {timing['workload_s']:.0f} s "
          f"-> {share:.1%} (target >= 75%)")

    from vbench.results.rundir import load_samples

    df = load_samples(run_dir)
    sel = df[(df.variant == VARIANT) & (df.workload == WORKLOAD) & (df.metric == "iops")]
    vb = statistics.median(sel.value)
    hand = statistics.median(by_hand(meta, args.hand_reps))
    diff = (vb - hand) / hand
    print(f"{VARIANT} {WORKLOAD}: vbench median {vb:,.0f} IOPS (n={len(sel)}), by hand median "
          f"{hand:,.0f} IOPS -> {diff:+.1%} (target within 5%)")
    ok = share >= 0.75 and abs(diff) <= 0.05
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
