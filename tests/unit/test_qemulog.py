"""How a guest ended, from libvirt's log of its QEMU (captured lab logs, one crafted reset)."""

from pathlib import Path

from vbench.core.metrics import CommandResult
from vbench.core import qemulog

DATA = Path(__file__).resolve().parents[1] / "data"


def _log(name: str) -> str:
    return (DATA / name).read_text()


def test_a_panic_reads_as_crashed_with_the_signal_libvirtd_sent():
    how = qemulog.ending(_log("qemu-log-panicked.txt"), "Kernel panic - not syncing: sysrq")
    assert how.startswith("libvirt: shutting down, reason=crashed: ")
    assert "kernel panic via pvpanic" in how
    assert "signal 15 from libvirtd (pid 4671)" in how


def test_destroyed_names_a_libvirt_client():
    how = qemulog.ending(_log("qemu-log-destroyed.txt"), "")
    assert "reason=destroyed: a libvirt client destroyed it" in how


def test_a_silent_stop_reads_as_a_reset():
    how = qemulog.ending(_log("crafted-qemu-log-reset.txt"), "[   12.1] virtio_net virtio1 eth1: up\n")
    assert "reason=shutdown" in how
    assert "reset or powered off without a word" in how and "on_reboot is destroy" in how


def test_the_console_tells_a_power_off_and_a_reboot_from_a_reset():
    log = _log("crafted-qemu-log-reset.txt")
    assert "it powered off" in qemulog.ending(log, "[  30.2] reboot: Power down\n")
    assert "it rebooted" in qemulog.ending(log, "[  30.2] reboot: Restarting system\n")


def test_the_last_shut_off_line_counts():
    log = _log("qemu-log-destroyed.txt") + _log("qemu-log-panicked.txt")
    assert "reason=crashed" in qemulog.ending(log, "")


def test_no_shut_off_line_says_nothing():
    assert qemulog.ending("", "") == ""
    assert qemulog.ending("2026-12-05 10:29:10.935+0000: Domain id=22 is tainted\n", "") == ""


def test_an_unknown_reason_is_named_not_guessed():
    how = qemulog.ending("2026-12-05 10:00:00.000+0000: shutting down, reason=from-snapshot\n", "")
    assert "reason 'from-snapshot'" in how


class _Host:
    def __init__(self, res):
        self.res, self.argv = res, None

    def run(self, argv, timeout):
        self.argv = argv
        return self.res


def test_read_tail_reads_the_guests_log_by_argv_and_empty_when_unreadable():
    ok = _Host(CommandResult("tail", 0, "shutting down, reason=destroyed\n", "", 0.1))
    assert qemulog.read_tail(ok, "vbench-x") == "shutting down, reason=destroyed\n"
    assert ok.argv == ["tail", "-c", str(qemulog.TAIL_BYTES), "/var/log/libvirt/qemu/vbench-x.log"]
    bad = _Host(CommandResult("tail", 1, "", "No such file", 0.1))
    assert qemulog.read_tail(bad, "vbench-x") == ""
