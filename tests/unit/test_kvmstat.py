"""KVM's per-VM exit counters read from a host's debugfs (issue 22, vbench.host.kvmstat): the
pure parser on listings of a Debian 12 (6.1) host, what a failed read means, and that each host
reads them where QEMU runs.

The listings under tests/data/ are what ``stats_argv`` prints for one VM: x86 before and after a
measured window, and arm64, whose KVM has other names for most counters.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from vbench.core import procs
from vbench.core.metrics import KVM_EXIT_METRICS, CommandResult, metric_info
from vbench.host import hosts, kvmstat
from vbench.host.kvmstat import parse_listing, reading, stats_argv

DATA = Path(__file__).resolve().parents[1] / "data"
BEFORE = (DATA / "kvm-debugfs-6.1-x86-before.txt").read_text()
ARM64 = (DATA / "kvm-debugfs-6.1-arm64.txt").read_text()
PID = 41732


# ---- the pure parser --------------------------------------------------------------------------

def test_an_x86_listing_gives_the_five_counters_and_nothing_else():
    got = parse_listing(BEFORE, PID)
    assert got.values == {"exits_per_op": 4817263, "io_exits_per_op": 203511,
                          "mmio_exits_per_op": 61874, "halt_exits_per_op": 1398221,
                          "irq_injections_per_op": 1610442}
    assert got.absent == {}


def test_a_missing_counter_file_is_absent_not_zero():
    """arm64's KVM counts exits but has no io_exits, mmio_exits (mmio_exit_user/_kernel),
    halt_exits or irq_injections files."""
    got = parse_listing(ARM64, 3310)
    assert got.values == {"exits_per_op": 2281907}
    assert set(got.absent) == set(KVM_EXIT_METRICS) - {"exits_per_op"}
    assert "no halt_exits counter" in got.absent["halt_exits_per_op"]
    assert 0 not in got.values.values()


def test_no_directory_for_the_pid_is_absent():
    assert parse_listing("", PID) == kvmstat.all_absent(
        f"no KVM statistics for QEMU pid {PID} in /sys/kernel/debug/kvm")
    # another QEMU whose pid starts with ours is not ours
    other = BEFORE.replace(f"/{PID}-12/", f"/{PID}1-12/")
    assert parse_listing(other, PID).values == {}


def test_two_vms_of_one_pid_are_ambiguous_so_absent():
    both = BEFORE + BEFORE.replace(f"/{PID}-12/", f"/{PID}-15/")
    got = parse_listing(both, PID)
    assert got.values == {} and "2 KVM VMs" in got.absent["exits_per_op"]


@pytest.mark.parametrize("value", ["-3", "12abc", "1" * 21, str(1 << 64), ""])
def test_a_counter_that_is_not_a_u64_is_absent(value):
    text = BEFORE.replace("/exits:4817263", f"/exits:{value}")
    got = parse_listing(text, PID)
    assert "exits_per_op" not in got.values and "exits_per_op" in got.absent
    assert got.values["io_exits_per_op"] == 203511


def test_an_oversized_listing_is_not_read():
    got = parse_listing(BEFORE * 100, PID)
    assert got.values == {} and "larger than" in got.absent["exits_per_op"]


def test_debugfs_not_mounted_is_the_reason():
    res = CommandResult("find ...", 1, "", "find: '/sys/kernel/debug/kvm': No such file or "
                                          "directory\n", 0.01)
    got = reading(res, PID)
    assert got.values == {} and set(got.absent) == set(KVM_EXIT_METRICS)
    assert "debugfs is not mounted" in got.absent["io_exits_per_op"]
    denied = CommandResult("find ...", 1, "", "find: '/sys/kernel/debug/kvm': Permission denied",
                           0.01)
    assert "Permission denied" in reading(denied, PID).absent["exits_per_op"]


def test_the_command_is_an_argv_with_the_pid_as_a_number():
    argv = stats_argv(PID)
    assert argv[0] == "find" and f"/sys/kernel/debug/kvm/{PID}-*/*" in argv
    assert ["-mindepth", "2", "-maxdepth", "2"] == argv[2:6]  # the VM's own files, not vcpuN/
    assert not any(";" in a or "|" in a for a in argv)
    with pytest.raises(ValueError):
        stats_argv("1; rm -rf /")  # type: ignore[arg-type]


def test_only_the_allow_listed_counter_files_are_read():
    """Not every file of the VM's directory: some (mmu_rmaps_stat) walk KVM's MMU when read."""
    argv = stats_argv(PID)
    group = argv[argv.index("(") + 1:argv.index(")")]
    names = [group[i + 1] for i, a in enumerate(group) if a == "-name"]
    assert names == ["exits", "io_exits", "mmio_exits", "halt_exits", "irq_injections"]
    assert all(a in ("-name", "-o") or a in names for a in group)
    assert argv.index(")") < argv.index("-exec")


def test_the_counters_map_onto_catalogued_metrics():
    assert tuple(kvmstat.COUNTERS.values()) == KVM_EXIT_METRICS
    assert all(metric_info(m).unit in ("exits/op", "irqs/op") for m in KVM_EXIT_METRICS)


# ---- the hosts read it where QEMU runs ----------------------------------------------------------

def test_the_local_lab_reads_outside_its_network_namespace(monkeypatch):
    """`ip netns exec` mounts a fresh /sys without debugfs: the lab must not read through it."""
    seen = []

    def fake_run(argv, timeout, check):
        seen.append(argv)
        return CommandResult(" ".join(argv), 0, BEFORE, "", 0.01)

    monkeypatch.setattr(procs, "run", fake_run)
    got = hosts.LocalLab("qemu:///system", "vbench").kvm_counters(PID)
    assert seen == [stats_argv(PID)] and got.values["exits_per_op"] == 4817263


def test_another_host_reads_over_its_session():
    calls = []
    session = SimpleNamespace(libvirt_uri="qemu+ssh://root@hv1/system", run=lambda argv, timeout,
                              check: calls.append(argv) or CommandResult("", 0, ARM64, "", 0.1))
    got = hosts.OtherHost(session).kvm_counters(3310)  # type: ignore[arg-type]
    assert calls == [stats_argv(3310)] and got.values == {"exits_per_op": 2281907}
