"""Plain data types shared by the rooms: samples, metric facts and command results.

A probe turns tool output into :class:`Sample` objects (workload, metric, value, unit). The runner
adds the context (run, variant, repetition, accelerator, ...) when it stores them, so every stored
row is one measured number with everything needed to trust it. This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Columns of the tidy sample table, in order. One row per measured number.
SAMPLE_COLUMNS = (
    "run_id",       # results directory name of the run
    "scenario",     # scenario name
    "variant",      # variant name from the scenario ("virtio-blk", "sata", ... or "host")
    "device",       # device kind under test: disk | nic | rng | balloon | host
    "model",        # device model/bus under test: virtio, scsi, sata, ide, e1000, none, host ...
    "paravirtual",  # True when the device under test is virtio, False when emulated/absent
    "workload",     # workload name from the scenario ("randread-4k-qd32", "tcp-h2g-1", ...)
    "repetition",   # 0-based repetition index
    "metric",       # metric name (see METRICS)
    "value",        # float
    "unit",         # unit string
    "accelerator",  # kvm | tcg
    "host",         # host name the run was measured on
)


@dataclass(frozen=True)
class Sample:
    """One number a probe measured, before the runner adds the run context."""

    workload: str
    metric: str
    value: float
    unit: str

    def __post_init__(self) -> None:
        # The metric catalogue is the one home of units: a probe that names a metric it does not
        # declare, or another unit for it, is a bug, never a silently mislabelled number.
        info = metric_info(self.metric)
        if self.unit != info.unit:
            raise ValueError(f"metric {self.metric!r} is measured in {info.unit!r}, not "
                             f"{self.unit!r}")


@dataclass(frozen=True)
class MetricInfo:
    label: str
    unit: str
    higher_is_better: bool
    # Compared as a difference in the metric's unit against this threshold instead of as a
    # relative change: metrics whose baseline is often 0, where a ratio means nothing.
    abs_threshold: float | None = None


# The metric catalogue: every metric vbench stores, with its unit and direction. A name that is not
# here (or a declared direction prefix of one, see `metric_info`) is an error wherever it is used.
METRICS: dict[str, MetricInfo] = {
    "iops": MetricInfo("IOPS", "IO/s", True),
    "bw": MetricInfo("Bandwidth", "MiB/s", True),
    "clat_mean": MetricInfo("Completion latency (mean)", "us", False),
    "clat_p50": MetricInfo("Completion latency p50", "us", False),
    "clat_p99": MetricInfo("Completion latency p99", "us", False),
    "clat_p99.9": MetricInfo("Completion latency p99.9", "us", False),
    "guest_cpu_usr": MetricInfo("Guest CPU user", "%", False),
    "guest_cpu_sys": MetricInfo("Guest CPU system", "%", False),
    # derived by the report from the same repetition's usr + sys CPU and IOPS
    "guest_cpu_per_io": MetricInfo("Guest CPU per I/O", "us", False),
    "host_cpu_per_io": MetricInfo("Host CPU (QEMU) per I/O", "us", False),
    # KVM's own counters of the guest's VM (host debugfs) over the same window, per I/O; KVM only
    "exits_per_op": MetricInfo("VM exits per I/O", "exits/op", False),
    "io_exits_per_op": MetricInfo("Port I/O exits per I/O", "exits/op", False),
    "mmio_exits_per_op": MetricInfo("MMIO exits per I/O", "exits/op", False),
    "halt_exits_per_op": MetricInfo("HLT exits per I/O", "exits/op", False),
    "irq_injections_per_op": MetricInfo("Injected interrupts per I/O", "irqs/op", False),
    "throughput": MetricInfo("Throughput", "Mbit/s", True),
    "retransmits": MetricInfo("TCP retransmits", "count", False, abs_threshold=100.0),
    "retransmits_per_gb": MetricInfo("TCP retransmits per GB sent", "1/GB", False,
                                     abs_threshold=10.0),
    "pps": MetricInfo("Packets per second", "pkt/s", True),
    "loss": MetricInfo("Packet loss", "%", False, abs_threshold=1.0),  # percentage points
    "rtt_p50": MetricInfo("Round-trip time p50", "us", False),
    "rtt_p99": MetricInfo("Round-trip time p99", "us", False),
    "sender_cpu": MetricInfo("iperf3 sender CPU", "%", False),
    "receiver_cpu": MetricInfo("iperf3 receiver CPU", "%", False),
    # derived by the report: the guest's iperf3 CPU (receiver h2g, sender g2h) per Gbit moved
    "guest_cpu_per_gbit": MetricInfo("Guest CPU (iperf3) per Gbit", "s/Gbit", False),
    "balloon_supported": MetricInfo("Balloon supported", "bool", True),
    "host_cpu_per_gbit": MetricInfo("Host CPU (QEMU) per Gbit", "s/Gbit", False),
    "hwrng_read_rate": MetricInfo("/dev/hwrng read rate", "B/s", True),
    "crng_init_time": MetricInfo("Time to crng init done", "s", False),
    "ssh_ready_time": MetricInfo("Boot to SSH ready", "s", False),
    "getrandom_latency": MetricInfo("Blocking getrandom latency", "us", False),
    "entropy_avail": MetricInfo("entropy_avail (informational)", "bits", True),
    "balloon_inflate_time": MetricInfo("Balloon inflate time", "s", False),
    "balloon_deflate_time": MetricInfo("Balloon deflate time", "s", False),
    "guest_mem_before": MetricInfo("Guest MemTotal before", "MiB", True),
    "guest_mem_shrunk": MetricInfo("Guest MemTotal after inflate", "MiB", False),
    "guest_mem_after": MetricInfo("Guest MemTotal after deflate", "MiB", True),
    "host_rss_before": MetricInfo("QEMU RSS before inflate", "MiB", False),
    "host_rss_shrunk": MetricInfo("QEMU RSS after inflate", "MiB", False),
    "host_mem_returned": MetricInfo("Memory returned to host", "MiB", True),
    "g2h_throughput": MetricInfo("Byte channel guest to host", "KiB/s", True),
    "h2g_throughput": MetricInfo("Byte channel host to guest", "KiB/s", True),
    "create_rate": MetricInfo("Files created per second", "files/s", True),
    "stat_rate": MetricInfo("Files stat'ed per second", "files/s", True),
    "delete_rate": MetricInfo("Files deleted per second", "files/s", True),
    "create_lat_p50": MetricInfo("File create latency p50", "us", False),
    "create_lat_p99": MetricInfo("File create latency p99", "us", False),
    "stat_lat_p50": MetricInfo("File stat latency p50", "us", False),
    "stat_lat_p99": MetricInfo("File stat latency p99", "us", False),
    "delete_lat_p50": MetricInfo("File delete latency p50", "us", False),
    "delete_lat_p99": MetricInfo("File delete latency p99", "us", False),
}

# The VM-exit metrics, in the order the report shows them (host/kvmstat.py maps KVM's counter
# files onto them; the fio workload stores them).
KVM_EXIT_METRICS = ("exits_per_op", "io_exits_per_op", "mmio_exits_per_op", "halt_exits_per_op",
                    "irq_injections_per_op")

# A job that both reads and writes (fio rw/randrw) reports each direction under a prefix.
DIRECTION_PREFIXES = {"read_": "Read", "write_": "Write"}
DIRECTIONAL = ("iops", "bw", "clat_mean", "clat_p50", "clat_p99", "clat_p99.9")


def metric_info(metric: str) -> MetricInfo:
    """The catalogue entry of ``metric``; an unknown name is an error, never a guessed direction."""
    info = METRICS.get(metric)
    if info is not None:
        return info
    for prefix, word in DIRECTION_PREFIXES.items():
        base = metric[len(prefix):]
        if metric.startswith(prefix) and base in DIRECTIONAL:
            b = METRICS[base]
            return MetricInfo(f"{b.label} ({word.lower()})", b.unit,
                              b.higher_is_better, b.abs_threshold)
    raise ValueError(f"unknown metric {metric!r}: not in the metric catalogue "
                     f"(vbench.core.metrics.METRICS)")


def base_metric(metric: str) -> str:
    """``read_iops`` -> ``iops``: the metric without its direction prefix."""
    return next((metric[len(p):] for p in DIRECTION_PREFIXES if metric.startswith(p)), metric)


def is_known(metric: str) -> bool:
    try:
        metric_info(metric)
    except ValueError:
        return False
    return True


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is an improvement."""
    return metric_info(metric).higher_is_better


def absolute_threshold(metric: str) -> float | None:
    """The declared absolute threshold of ``metric`` (None: compared as a relative change)."""
    return metric_info(metric).abs_threshold


def metric_label(metric: str) -> str:
    return metric_info(metric).label


def metric_unit(metric: str) -> str:
    """The metric's unit from the catalogue ("" for a metric it does not list)."""
    info = METRICS.get(metric)
    return info.unit if info else ""


@dataclass
class CommandResult:
    """What one command run in a guest (or on the host) did."""

    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    def tail(self, lines: int = 5) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-lines:])
