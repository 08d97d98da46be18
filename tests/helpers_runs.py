"""Synthetic vbench runs for tests and benchmarks, written with the real store (RunDir).

``write_run(tmp_path, "run-a")`` writes a complete disk run whose true medians are known: every
value is ``level * exp(N(0, cv))`` (log-normal noise, so the median of the distribution is exactly
``level``). Ratios of levels are therefore the true virtio/emulated ratios the analysis must find.

Import from a test with::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/
    from helpers_runs import write_run
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from vbench.results.rundir import RunDir

# variant -> (device, model, paravirtual, level multiplier of "performance")
# IOPS levels shaped like real fio randread-4k-qd32 numbers under KVM (virtio ~11500, sata ~4600,
# ide ~3000); the host-native baseline is well above all of them.
DISK_VARIANTS = {
    "virtio-blk": ("disk", "virtio", True, 11500.0),
    "virtio-scsi": ("disk", "scsi", True, 10400.0),
    "sata": ("disk", "sata", False, 4600.0),
    "ide": ("disk", "ide", False, 3000.0),
}
HOST_VARIANT = {"host": ("host", "host", False, 40000.0)}
NIC_VARIANTS = {
    "virtio-net": ("nic", "virtio", True, 9400.0),
    "e1000": ("nic", "e1000", False, 2100.0),
    "rtl8139": ("nic", "rtl8139", False, 450.0),
}
RNG_VARIANTS = {
    "virtio-rng": ("rng", "virtio", True, 1.0),
    "no-rng": ("rng", "none", False, 1.0),
}
BALLOON_VARIANTS = {
    "virtio-balloon": ("balloon", "virtio", True, 1.0),
}

DISK_WORKLOADS = {"randread-4k-qd32": 1.0, "randwrite-4k-qd32": 0.8, "seqread-1m": 0.05}
# named like the runner names them: the scenario's workload name plus the direction
NIC_WORKLOADS = {"tcp-1-h2g": 1.0, "tcp-1-g2h": 0.9, "rtt-h2g": 1.0, "rtt-g2h": 1.0}

UNITS = {"iops": "IO/s", "bw": "MiB/s", "clat_p50": "us", "clat_p99": "us", "clat_p99.9": "us",
         "throughput": "Mbit/s", "retransmits": "count", "rtt_p50": "us", "rtt_p99": "us",
         "hwrng_read_rate": "B/s", "crng_init_time": "s", "entropy_avail": "bits",
         "guest_mem_before": "MiB", "guest_mem_shrunk": "MiB", "guest_mem_after": "MiB",
         "host_rss_before": "MiB", "host_rss_shrunk": "MiB", "host_mem_returned": "MiB",
         "balloon_inflate_time": "s"}


def disk_level(variant_level: float, workload_factor: float, metric: str) -> float:
    iops = variant_level * workload_factor
    return {"iops": iops,
            "bw": iops * (1024.0 if workload_factor < 0.1 else 4.0) / 1024.0,
            "clat_p50": 32e6 / iops,
            "clat_p99": 2.5 * 32e6 / iops,
            "clat_p99.9": 4.0 * 32e6 / iops}[metric]


def nic_level(variant_level: float, workload: str, metric: str) -> float:
    if workload.startswith("rtt"):
        return {"rtt_p50": 2.0e5 / variant_level, "rtt_p99": 5.0e5 / variant_level,
                "loss": 0.5}[metric]
    factor = NIC_WORKLOADS.get(workload, 1.0)
    return {"throughput": variant_level * factor, "retransmits": 3.0 + 1000.0 / variant_level}[metric]


def kind_spec(kind: str):
    """(variants, workloads -> metrics, level function) of a synthetic scenario kind."""
    if kind == "disk":
        return (DISK_VARIANTS,
                {w: ["iops", "bw", "clat_p50", "clat_p99", "clat_p99.9"] for w in DISK_WORKLOADS},
                lambda v, w, m: disk_level(v, DISK_WORKLOADS.get(w, 1.0), m))
    if kind == "nic":
        return (NIC_VARIANTS,
                {"tcp-1-h2g": ["throughput", "retransmits"], "tcp-1-g2h": ["throughput", "retransmits"],
                 "rtt-h2g": ["rtt_p50", "rtt_p99", "loss"], "rtt-g2h": ["rtt_p50", "rtt_p99", "loss"]},
                lambda v, w, m: nic_level(v, w, m))
    if kind == "rng":
        def rng_level(v, w, m, _variant=None):
            return {"hwrng_read_rate": 1.2e6, "crng_init_time": 1.5, "entropy_avail": 256.0}[m]
        return (RNG_VARIANTS, {"entropy": ["hwrng_read_rate", "crng_init_time", "entropy_avail"]},
                rng_level)
    if kind == "balloon":
        def balloon_level(v, w, m):
            return {"guest_mem_before": 985.0, "guest_mem_shrunk": 473.0, "guest_mem_after": 985.0,
                    "host_rss_before": 720.0, "host_rss_shrunk": 250.0, "host_mem_returned": 470.0,
                    "balloon_inflate_time": 0.8}[m]
        return (BALLOON_VARIANTS,
                {"inflate-512": ["guest_mem_before", "guest_mem_shrunk", "guest_mem_after",
                                 "host_rss_before", "host_rss_shrunk", "host_mem_returned",
                                 "balloon_inflate_time"]},
                balloon_level)
    raise ValueError(kind)


def domain_xml(name: str, model: str, kind: str) -> str:
    if kind == "disk":
        target = "vdb" if model == "virtio" else "sdb"
        dev = (f"    <disk type='file' device='disk'>\n"
               f"      <driver name='qemu' type='raw' cache='none' io='native'/>\n"
               f"      <source file='/var/lib/vbench/guests/{name}/scratch.raw'/>\n"
               f"      <target dev='{target}' bus='{model}'/>\n"
               f"      <serial>vbench-scratch</serial>\n"
               f"    </disk>\n")
    elif kind == "nic":
        dev = (f"    <interface type='network'>\n      <source network='vbench-test'/>\n"
               f"      <model type='{model}'/>\n    </interface>\n")
    elif kind == "rng":
        dev = ("    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n"
               "    </rng>\n") if model == "virtio" else ""
    else:
        dev = f"    <memballoon model='{model}'/>\n"
    return (f"<domain type='kvm'>\n  <name>vbench-{name}</name>\n  <memory unit='MiB'>1024</memory>\n"
            f"  <vcpu>2</vcpu>\n  <devices>\n    <disk type='file' device='disk'>\n"
            f"      <source file='/var/lib/vbench/guests/{name}/boot.qcow2'/>\n"
            f"      <target dev='vda' bus='virtio'/>\n    </disk>\n{dev}  </devices>\n</domain>\n")


DRIVERS = {"virtio": "virtio_blk", "scsi": "virtio_scsi", "sata": "ahci", "ide": "ata_piix",
           "e1000": "e1000", "rtl8139": "8139cp", "none": "", "host": ""}


def write_run(root: Path, run_id: str, *, kind: str = "disk", scenario: str | None = None,
              variants: dict | None = None, workloads: dict | None = None, reps: int = 5,
              accelerator: str = "kvm", host: str = "lab1", cv: float = 0.03, seed: int = 0,
              scale: dict[str, float] | None = None, host_baseline: bool = False,
              status: str = "complete", failures: list[dict] | None = None,
              meta: dict | None = None, started: str | None = None,
              level: Callable[[float, str, str], float] | None = None,
              consolidate: bool = True) -> Path:
    """Write a synthetic run under ``root/run_id`` and return its path.

    ``scale`` multiplies a variant's level (e.g. ``{"virtio-blk": 0.5}`` for a 2x regression),
    ``variants``/``workloads`` override the kind's defaults (workloads: name -> list of metrics),
    ``meta`` is merged over the generated run.json (set a key to None to drop it).
    """
    kvariants, kworkloads, klevel = kind_spec(kind)
    variants = dict(variants if variants is not None else kvariants)
    if host_baseline:
        variants.update(HOST_VARIANT)
    workloads = workloads if workloads is not None else kworkloads
    level = level or klevel
    scenario = scenario or kind
    scale = scale or {}
    rng = np.random.default_rng(seed)
    rd = RunDir.create(Path(root), run_id)
    for vname, (device, model, para, vlevel) in variants.items():
        for rep in range(reps):
            rows = []
            for wname, metrics in workloads.items():
                for metric in metrics:
                    if kind == "rng" and metric == "hwrng_read_rate" and model == "none":
                        continue  # no /dev/hwrng without a virtio-rng device
                    if kind == "rng" and metric == "crng_init_time":
                        true = 1.5 if model == "virtio" else 9.0
                    else:
                        true = level(vlevel, wname, metric)
                    factor = scale.get(vname, 1.0)
                    if factor != 1.0:
                        from vbench.core.metrics import higher_is_better
                        true = true * factor if higher_is_better(metric) else true / factor
                    value = true * math.exp(rng.normal(0.0, cv))
                    rows.append({"run_id": run_id, "scenario": scenario, "variant": vname,
                                 "device": device, "model": model, "paravirtual": para,
                                 "workload": wname, "repetition": rep, "metric": metric,
                                 "value": f"{value:.6g}", "unit": UNITS.get(metric, ""),
                                 "accelerator": accelerator, "host": host})
            rd.add_samples(f"{vname}-r{rep}", rows)
    if consolidate:
        rd.consolidate()
    base_meta = {
        "run_id": run_id,
        "status": status,
        "started": started or f"2026-11-{1 + (seed % 28):02d}T10:00:00+00:00",
        "finished": started or f"2026-11-{1 + (seed % 28):02d}T10:30:00+00:00",
        "vbench_version": "0.1.0",
        "scenario": {"name": scenario, "file": f"scenarios/{scenario}.yaml",
                     "text": f"name: {scenario}\ndevice: {kind}\n",
                     "description": f"synthetic {kind} scenario"},
        "environment": {"host": host, "host_kernel": "6.1.0-26-amd64",
                        "cpu_model": "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "cpus": 8,
                        "memory_mib": 32000, "qemu_version": "7.2.13", "libvirt_version": "9.0.0",
                        "libvirt_uri": "qemu:///system", "accelerator": accelerator,
                        "accelerator_reason": "/dev/kvm usable" if accelerator == "kvm"
                        else "/dev/kvm missing: running under TCG",
                        "fio_version_host": "fio-3.33"},
        "variants": {
            v: {"device": d, "model": m, "paravirtual": p,
                "domain_xml": "" if d == "host" else domain_xml(v, m, kind),
                "guest_kernel": "" if d == "host" else "6.1.0-56-amd64",
                "guest_clocksource": "" if d == "host" else "hpet",
                "drivers": {} if d == "host" or m == "none" else
                {kind: {"expected": DRIVERS.get(m, m), "found": DRIVERS.get(m, m), "ok": True}},
                "baseline": d == "host"}
            for v, (d, m, p, _lvl) in variants.items()},
        "workloads": {w: {"tool": "fio" if kind == "disk" else "iperf3", "options": {"metrics": ms}}
                      for w, ms in workloads.items()},
        "failures": list(failures or []),
    }
    for k, v in (meta or {}).items():
        if v is None:
            base_meta.pop(k, None)
        else:
            base_meta[k] = v
    rd.write_meta(base_meta)
    return rd.path
