"""VM exits per I/O (issue 22): KVM's per-VM counters of the guest's QEMU read from the host's
debugfs before and after fio's measured window, divided by its I/Os; absent (no row, a reason in
the run record), never 0, when a counter cannot be read; no rows at all under TCG. (The parser
itself: test_kvmstat.py.)"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from vbench.core.metrics import KVM_EXIT_METRICS, CommandResult
from vbench.host.kvmstat import KvmCounters, parse_listing
from vbench.run import executors
from vbench.run.cpuwindow import ExitWindow
from vbench.workloads import WORKLOADS
from vbench.workloads.common import EXITS_ABSENT_FACT, exit_samples

DATA = Path(__file__).resolve().parents[1] / "data"
BEFORE = (DATA / "kvm-debugfs-6.1-x86-before.txt").read_text()
AFTER = (DATA / "kvm-debugfs-6.1-x86-after.txt").read_text()
ARM64 = (DATA / "kvm-debugfs-6.1-arm64.txt").read_text()
RANDREAD = (DATA / "fio-randread-4k-qd32-sata-tcg.json").read_text()
PID = 41732


# ---- the window and the per-I/O samples ----------------------------------------------------------

def closed_window(first: KvmCounters, last: KvmCounters, length: float = 4.4) -> ExitWindow:
    w = ExitWindow(lambda: first, 0.0, length + 0.6)
    w.values = [first, last]
    return w


def test_exits_per_io_from_two_readings():
    w = closed_window(parse_listing(BEFORE, PID), parse_listing(AFTER, PID))
    facts: dict = {}
    samples = exit_samples("randread", w, ops_per_s=20000.0, facts=facts)
    by = {s.metric: s for s in samples}
    assert set(by) == set(KVM_EXIT_METRICS) and facts == {}
    # 211200 exits in 4.4 s at 20000 IO/s: 88000 I/Os
    assert by["exits_per_op"].value == pytest.approx(2.4)
    assert by["halt_exits_per_op"].value == pytest.approx(0.7)
    assert by["irq_injections_per_op"].value == pytest.approx(1.08)
    assert by["io_exits_per_op"].value == pytest.approx(0.001)
    assert by["exits_per_op"].unit == "exits/op" and by["irq_injections_per_op"].unit == "irqs/op"


def test_missing_counters_give_no_rows_and_say_why():
    w = closed_window(parse_listing(ARM64, 3310), parse_listing(ARM64, 3310))
    facts: dict = {}
    samples = exit_samples("randread", w, ops_per_s=1000.0, facts=facts)
    assert [s.metric for s in samples] == ["exits_per_op"] and samples[0].value == 0.0  # real 0
    assert set(facts[EXITS_ABSENT_FACT]) == set(KVM_EXIT_METRICS) - {"exits_per_op"}


def test_a_counter_that_went_back_is_absent():
    before = parse_listing(AFTER, PID)
    w = closed_window(before, parse_listing(BEFORE, PID))
    assert w.per_second() == {}
    assert "went backwards" in w.absent()["exits_per_op"]


def test_a_window_that_did_not_close_is_absent_not_zero():
    with ExitWindow(lambda: parse_listing(BEFORE, PID), 5.0, 5.0) as w:
        pass
    assert w.per_second() == {} and set(w.absent()) == set(KVM_EXIT_METRICS)


def test_a_window_with_nothing_to_read_has_no_rows_and_no_reasons():
    with ExitWindow(None, 0.0, 0.05) as w:
        threading.Event().wait(0.15)
    assert w.per_second() == {} and w.absent() == {}
    facts: dict = {}
    assert exit_samples("w", w, 1000.0, facts) == [] and facts == {}


# ---- the fio executor, KVM and TCG ---------------------------------------------------------------

class FakeHost:
    def __init__(self, listings: list[str]) -> None:
        self.listings = listings
        self.calls: list[int] = []
        self.read_twice = threading.Event()

    def kvm_counters(self, pid: int) -> KvmCounters:
        self.calls.append(pid)
        got = parse_listing(self.listings[min(len(self.calls), len(self.listings)) - 1], PID)
        if len(self.calls) >= 2:
            self.read_twice.set()
        return got


class FakeSsh:
    def __init__(self, host: FakeHost, wait: bool) -> None:
        self.host, self.wait = host, wait

    def run(self, cmd, timeout=60.0, check=False):
        if self.wait:
            assert self.host.read_twice.wait(5), "the exit window never closed"
            threading.Event().wait(0.05)  # let the timer thread store what it just read
        else:
            threading.Event().wait(1.0)  # as long as fio's runtime: the window would close
        return CommandResult(cmd, 0, RANDREAD, "", 1.0)


class FakeGuest:
    def __init__(self, accel: str, listings: list[str]) -> None:
        self.name = "vbench-unit-2-C"
        self.host = FakeHost(listings)
        self.ssh = FakeSsh(self.host, wait=accel == "kvm")
        self.accel = SimpleNamespace(name=accel)
        self.lab = SimpleNamespace(host=self.host)

    def qemu_pid(self):
        return os.getpid()  # its CPU time is real; its "debugfs" listings are the fixtures'

    def check_alive(self):
        pass


def run_fio(g: FakeGuest) -> tuple[list, dict]:
    from tests.unit.test_runner_units import sata_target, scenario

    scn = scenario(runtime=1, ramp=0)
    t = sata_target(g)
    samples, _ = executors.execute(scn, scn.workloads[0], t)
    return samples, t.facts


def test_fio_declares_the_exit_metrics():
    assert set(KVM_EXIT_METRICS) <= set(WORKLOADS["fio"].metrics)


def test_a_kvm_unit_stores_exits_per_io():
    g = FakeGuest("kvm", [BEFORE, AFTER])
    samples, facts = run_fio(g)
    by = {s.metric: s.value for s in samples}
    assert set(KVM_EXIT_METRICS) <= set(by) and EXITS_ABSENT_FACT not in facts
    assert g.host.calls == [os.getpid(), os.getpid()]
    ios = sum(j[d]["total_ios"] for j in json.loads(RANDREAD)["jobs"] for d in ("read", "write"))
    length = 1.0 - 2 * 0.25  # runtime 1 s less the window's margins
    assert by["exits_per_op"] == pytest.approx(211200 / length / (ios / 1.0))


def test_a_kvm_unit_without_a_counter_has_no_row_of_it():
    g = FakeGuest("kvm", [BEFORE.replace("halt_exits:", "halt_exits_gone:"),
                          AFTER.replace("halt_exits:", "halt_exits_gone:")])
    samples, facts = run_fio(g)
    metrics = {s.metric for s in samples}
    assert "halt_exits_per_op" not in metrics and "exits_per_op" in metrics
    assert "no halt_exits counter" in facts[EXITS_ABSENT_FACT]["halt_exits_per_op"]


def test_a_tcg_unit_has_no_exit_rows():
    """Under TCG nothing is read, whatever the host's debugfs would say: no rows, not zeros."""
    g = FakeGuest("tcg", [BEFORE, AFTER])
    samples, facts = run_fio(g)
    assert not {s.metric for s in samples} & set(KVM_EXIT_METRICS)
    assert g.host.calls == [] and EXITS_ABSENT_FACT not in facts
    assert "host_cpu_per_io" in {s.metric for s in samples}  # the rest is measured as before


def test_a_guest_without_a_qemu_pid_says_so():
    g = FakeGuest("kvm", [BEFORE])
    g.qemu_pid = lambda: None  # type: ignore[method-assign]
    g.ssh.wait = False
    samples, facts = run_fio(g)
    assert not {s.metric for s in samples} & set(KVM_EXIT_METRICS)
    assert "pid is not known" in facts[EXITS_ABSENT_FACT]["exits_per_op"]


# ---- the run record keeps why -------------------------------------------------------------------

def test_the_run_record_keeps_why_exit_rows_are_absent(tmp_path):
    from tests.unit.test_session import FakeExecutor, make_session, scenario as session_scenario
    from vbench.results import rundir as store

    why = {"halt_exits_per_op": "this kernel has no halt_exits counter"}
    ex = FakeExecutor({("A", "w1", 0): lambda t: t.facts.update({EXITS_ABSENT_FACT: dict(why)})})
    s = make_session(tmp_path, session_scenario(reps=1), execute=ex)
    s.run()
    rec = store.load_record(s.rd.path)
    assert rec.variants["A"].kvm_exits_absent == why
    assert rec.variants["B"].kvm_exits_absent == {}
    assert EXITS_ABSENT_FACT not in s.targets["A"].facts  # taken once, not carried to the next


def test_a_failed_read_is_absent_with_its_reason():
    from vbench.core.errors import LabError

    g = FakeGuest("kvm", [BEFORE])

    def broken(pid):
        g.host.calls.append(pid)
        raise LabError("the SSH session to hv1 is closed")

    g.host.kvm_counters = broken  # type: ignore[method-assign]
    g.ssh.wait = False
    samples, facts = run_fio(g)
    assert not {s.metric for s in samples} & set(KVM_EXIT_METRICS)
    assert "session to hv1 is closed" in facts[EXITS_ABSENT_FACT]["exits_per_op"]
    assert len(g.host.calls) == 2
