"""The run loop (RunSession) with fakes at its two seams: the guest factory and the executor.

Everything between those seams is the real code: the plan, the record, the run directory on disk,
recovery, skipping of dead variants, resume and Ctrl-C. The real path (libvirt, SSH, fio) is
covered by tests/integration/test_run_disk.py and test_faults.py.
"""

from __future__ import annotations

import csv
import threading
import time

import pytest

from vbench.run import runner
from vbench.results import rundir as store
from vbench.core.errors import GuestError, RemoteCommandError
from vbench.core.errors import BootError, ImageUnfit
from vbench.run.executors import Target
from vbench.core.metrics import CommandResult, Sample
from vbench.results.record import Environment
from vbench.scenario.schema import load_scenario_text
from vbench.run import session
from vbench.run.session import Booted, RunSession, Unit, plan
from vbench.guest.verify import DriverCheck

SCENARIO = """\
name: unit
device: disk
repetitions: {reps}
order: {order}
host_baseline: {baseline}
fio_defaults: {{runtime: 1, ramp_time: 0}}
variants:
  - {{name: A, disk: {{bus: virtio}}}}
  - {{name: B, disk: {{bus: scsi}}}}
  - {{name: C, disk: {{bus: sata}}}}
workloads:
  - {{name: w1, fio: {{rw: randread, bs: 4k, iodepth: 1}}}}
  - {{name: w2, fio: {{rw: write, bs: 1m, iodepth: 1}}}}
"""


def scenario(reps=2, order="interleaved", baseline="false"):
    return load_scenario_text(SCENARIO.format(reps=reps, order=order, baseline=baseline))


class FakeSsh:
    def __init__(self) -> None:
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive

    def run(self, cmd, timeout=None, check=False):
        return CommandResult(cmd, 0 if self.alive else 255, "", "", 0.0)


class FakeGuest:
    def __init__(self, name: str) -> None:
        self.name, self.xml, self.boot_seconds = name, f"<domain><name>{name}</name></domain>", 1.26
        self.ssh = FakeSsh()
        self.paused = self.dead = self.closed = False
        self.reconnects = 0
        self.log: list[str] = []

    def check_alive(self) -> None:
        if self.dead:
            raise GuestError(f"guest {self.name} is no longer running")

    def is_paused(self) -> bool:
        return self.paused

    def suspend(self) -> None:
        self.paused = True
        self.log.append("suspend")

    def resume(self) -> None:
        self.paused = False
        self.log.append("resume")

    def reconnect(self) -> None:
        self.reconnects += 1
        self.ssh = FakeSsh()

    def console_tail(self) -> str:
        return "[ 1.0] console of " + self.name

    def close(self) -> None:
        self.closed = True


class FakeGuests:
    """The guest factory seam: boots FakeGuests, can fail chosen variants."""

    def __init__(self, fail: tuple[str, ...] = (), hang: dict[str, int] | None = None,
                 unfit: tuple[str, ...] = ()) -> None:
        self.fail, self.unfit = fail, unfit
        self.hang = hang or {}   # variant -> how many of its first boot attempts hang
        self.guests: dict[str, FakeGuest] = {}
        self.boots: list[tuple[str, int | None]] = []
        self.attempts: list[tuple[str, int]] = []

    def boot(self, stack, v, index, rep, attempt=0, cancel=None):
        self.attempts.append((v.name, attempt))
        if attempt < self.hang.get(v.name, 0):
            raise BootError(f"guest g-{v.name} hung while booting: kernel booted, userspace did "
                            f"not start (try {attempt + 1})", f"(initramfs) {attempt + 1}", "kernel")
        self.boots.append((v.name, rep))
        if v.name in self.fail:
            raise GuestError(f"{v.name} did not get a DHCP lease", "console: no lease")
        if v.name in self.unfit:
            raise ImageUnfit("guest image debian12 lacks what this scenario runs in the guest: "
                             "fio (for randread)")
        g = FakeGuest(f"g-{v.name}")
        stack.callback(g.close)
        self.guests[v.name] = g
        checks = [DriverCheck("disk", "virtio", "virtio_blk", "virtio_blk", True, "/dev/vdb"),
                  DriverCheck("rng", "virtio", "virtio_rng", "virtio_rng.0", True)]
        return Booted(Target(v.name, g, {"kernel": "6.1.0-56-amd64", "clocksource": "hpet"}),
                      checks, "fio-3.33")

    def host(self, stack):
        return Target("host", None, {})


class FakeExecutor:
    """The executor seam: records calls; ``script`` maps (variant, workload, n-th call) to an
    exception or a callable run before answering."""

    def __init__(self, script=None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.script = script or {}

    def __call__(self, scn, w, target):
        self.calls.append((target.variant, w.name))
        n = self.calls.count((target.variant, w.name)) - 1
        if target.guest is not None:
            assert not target.guest.paused, "a unit must run on a resumed guest"
        action = self.script.get((target.variant, w.name, n))
        if isinstance(action, BaseException):
            raise action
        if callable(action):
            action(target)
        return [Sample(w.name, "iops", 1000.0 + len(self.calls), "IO/s")], f"raw {len(self.calls)}"


def make_session(tmp_path, scn, guests=None, execute=None, rd=None, cls=RunSession):
    if rd is None:
        rd = store.RunDir.create(tmp_path, "run-1")
        rec = runner._initial_record(rd.run_id, scn, "unit.yaml", "name: unit\n",
                                     Environment(host="h1", accelerator="tcg"), scn.repetitions)
        rd.write_record(rec)
    else:
        rec = rd.read_record()
    lines: list[str] = []
    s = cls(scn, rd, rec, guests or FakeGuests(), execute or FakeExecutor(), lines.append,
            scn.repetitions)
    s.lines = lines  # type: ignore[attr-defined]
    return s


def samples_csv(rd) -> list[dict]:
    with open(rd.path / "samples.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# ---- order ------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["interleaved", "sequential"])
def test_units_run_in_plan_order_and_each_variant_boots_once(tmp_path, order):
    scn = scenario(reps=3, order=order)
    ex, guests = FakeExecutor(), FakeGuests()
    s = make_session(tmp_path, scn, guests, ex)
    s.run()
    assert ex.calls == [(u.variant, u.workload) for u in plan(scn, 3)]
    if order == "interleaved":
        firsts = [ex.calls[i * 6][0] for i in range(3)]
        assert firsts == ["A", "B", "C"]  # rotated by one each repetition
    assert guests.boots == [("A", None), ("B", None), ("C", None)]
    assert all(g.closed for g in guests.guests.values())  # every guest torn down at the end
    rec = store.load_record(s.rd.path)
    assert rec.status == "complete" and rec.missing_units == 0 and rec.failures == []
    assert rec.variants["A"].drivers["rng"].ok and rec.variants["A"].guest_kernel == "6.1.0-56-amd64"
    assert rec.variants["A"].guest_clocksource == "hpet" and rec.guest_clocksources() == ["hpet"]
    assert rec.variants["B"].boot_seconds == 1.3 and rec.variants["C"].fio_version == "fio-3.33"
    rows = samples_csv(s.rd)
    assert len(rows) == 3 * 3 * 2
    assert {(r["variant"], r["model"], r["accelerator"], r["host"]) for r in rows} == {
        ("A", "virtio", "tcg", "h1"), ("B", "scsi", "tcg", "h1"), ("C", "sata", "tcg", "h1")}


def test_guests_are_suspended_between_their_units(tmp_path):
    guests = FakeGuests()
    make_session(tmp_path, scenario(reps=1), guests).run()
    # boot -> suspend; each of its two units: resume, suspend
    assert guests.guests["A"].log == ["suspend", "resume", "suspend", "resume", "suspend"]


def test_host_baseline_runs_through_the_factory(tmp_path):
    ex = FakeExecutor()
    s = make_session(tmp_path, scenario(reps=1, baseline="true"), execute=ex)
    s.run()
    assert ("host", "w1") in ex.calls and store.load_record(s.rd.path).status == "complete"


# ---- recovery ----------------------------------------------------------------------------------

def test_failed_unit_is_recorded_and_the_guest_recovers(tmp_path):
    def drop_ssh(target):
        target.guest.ssh.alive = False  # sshd died under the workload
        raise RemoteCommandError(CommandResult("fio ...", 255, "", "connection reset", 1.0))

    ex = FakeExecutor({("B", "w1", 0): drop_ssh})
    guests = FakeGuests()
    s = make_session(tmp_path, scenario(reps=2), guests, ex)
    s.run()
    assert guests.guests["B"].reconnects == 1
    assert ex.calls.count(("B", "w1")) == 2 and ex.calls.count(("B", "w2")) == 2  # B went on
    rec = store.load_record(s.rd.path)
    assert rec.status == "incomplete" and rec.missing_units == 1
    [f] = rec.failures
    assert (f.variant, f.workload, f.repetition, f.error_type) == ("B", "w1", 0, "RemoteCommandError")
    assert "connection reset" in f.error and f.console_tail == "[ 1.0] console of g-B"
    assert len(samples_csv(s.rd)) == 2 * 3 * 2 - 1
    assert any("B/w1 rep 1 failed" in line for line in s.lines)


def test_dead_guest_skips_its_remaining_units(tmp_path):
    def crash(target):
        target.guest.dead = True
        raise GuestError("guest g-A is no longer running", "Kernel panic - not syncing")

    ex = FakeExecutor({("A", "w1", 0): crash})
    s = make_session(tmp_path, scenario(reps=2), execute=ex)
    s.run()
    assert ("A", "w2") not in ex.calls and ex.calls.count(("A", "w1")) == 1
    assert ex.calls.count(("B", "w1")) == 2 and ex.calls.count(("C", "w2")) == 2
    rec = store.load_record(s.rd.path)
    assert rec.status == "incomplete" and rec.missing_units == 4
    first, *skipped = [f for f in rec.failures if f.variant == "A"]
    assert first.console_tail == "Kernel panic - not syncing"
    assert len(skipped) == 3 and all(f.error.startswith("skipped: guest is gone") for f in skipped)
    assert any("A: guest is gone" in line for line in s.lines)


def test_unexpected_exception_is_recorded_as_internal_error(tmp_path):
    ex = FakeExecutor({("C", "w2", 1): ZeroDivisionError("oops")})
    s = make_session(tmp_path, scenario(reps=2), execute=ex)
    s.run()
    [f] = store.load_record(s.rd.path).failures
    assert f.error.startswith("internal error in vbench (ZeroDivisionError: oops)")
    assert len(ex.calls) == 12  # the run went on


# ---- failed variant ---------------------------------------------------------------------------

def test_variant_that_fails_to_boot_is_recorded_and_skipped(tmp_path):
    ex = FakeExecutor()
    s = make_session(tmp_path, scenario(reps=2), FakeGuests(fail=("B",)), ex)
    s.run()
    assert {v for v, _ in ex.calls} == {"A", "C"} and len(ex.calls) == 8
    rec = store.load_record(s.rd.path)
    boot, *skipped = [f for f in rec.failures if f.variant == "B"]
    assert (boot.workload, boot.repetition, boot.error_type) == ("*", None, "GuestError")
    assert boot.console_tail == "console: no lease"
    assert len(skipped) == 4 and all("did not get a DHCP lease" in f.error for f in skipped)
    assert rec.status == "incomplete" and rec.missing_units == 4
    assert rec.variants["B"].drivers == {} and rec.variants["B"].verified is None
    assert any("variant B failed to come up" in line for line in s.lines)


def test_an_image_unfit_for_the_scenario_stops_the_run_instead_of_one_variant(tmp_path):
    ex = FakeExecutor()
    s = make_session(tmp_path, scenario(reps=2), FakeGuests(unfit=("B",)), ex)
    with pytest.raises(ImageUnfit, match="lacks what this scenario runs"):
        s.run()
    assert not any("variant B failed to come up" in line for line in s.lines)


def test_host_proofs_are_recorded_and_a_failed_one_skips_the_variant(tmp_path):
    """A vhost proof made on the host is stored in run.json with the variant's facts; a variant
    whose proof failed (verify.require_proofs raised in the factory) is not measured."""
    from vbench.core.errors import DeviceMismatch
    from vbench.devices import HostProof

    class ProvingGuests(FakeGuests):
        def boot(self, stack, v, index, rep, attempt=0, cancel=None):
            if v.name == "B":
                raise DeviceMismatch("guest g-B does not run the intended backend: vhost: true "
                                     "asked, but vhost is not in use on the host (none)")
            booted = super().boot(stack, v, index, rep, attempt)
            booted.proofs = [HostProof("vhost", "vhost: true", True,
                                       "/dev/vhost-net open as fd 37 (netdev hostnet1)", True)]
            return booted

    ex = FakeExecutor()
    s = make_session(tmp_path, scenario(reps=1), ProvingGuests(), ex)
    s.run()
    assert {v for v, _ in ex.calls} == {"A", "C"}
    rec = store.load_record(s.rd.path)
    proof = rec.variants["A"].host_proofs["vhost"]
    assert (proof.asked, proof.used, proof.ok) == ("vhost: true", True, True)
    assert proof.evidence == "/dev/vhost-net open as fd 37 (netdev hostnet1)"
    assert rec.variants["B"].host_proofs == {}
    assert [f.error_type for f in rec.failures if f.workload == "*"] == ["DeviceMismatch"]
    assert any(line.startswith("A: ") and "vhost: /dev/vhost-net open as fd 37" in line
               for line in s.lines)


# ---- boot retries -------------------------------------------------------------------------------

def test_a_hung_boot_is_retried_once_and_the_variant_is_measured(tmp_path):
    guests, ex = FakeGuests(hang={"B": 1}), FakeExecutor()
    s = make_session(tmp_path, scenario(reps=1), guests, ex)
    s.run()
    assert guests.attempts == [("A", 0), ("B", 0), ("B", 1), ("C", 0)]
    rec = store.load_record(s.rd.path)
    assert rec.status == "complete" and rec.failures == []
    [r] = rec.retries
    assert (r.variant, r.repetition, r.attempt, r.boot_stage) == ("B", None, 1, "kernel")
    assert "userspace did not start (try 1)" in r.error and r.console_tail == "(initramfs) 1"
    assert r.outcome == "booted"
    assert ("B", "w1") in ex.calls
    assert any("B: boot attempt 1 failed" in line and "retrying" in line for line in s.lines)


def test_a_boot_that_hangs_every_time_is_a_failed_variant_with_both_reasons(tmp_path):
    guests = FakeGuests(hang={"B": 9})
    s = make_session(tmp_path, scenario(reps=1), guests)
    s.run()
    assert guests.attempts.count(("B", 0)) == 1 and guests.attempts.count(("B", 1)) == 1
    assert ("B", 2) not in guests.attempts  # the default: one retry
    rec = store.load_record(s.rd.path)
    [r] = rec.retries
    assert r.outcome.startswith("failed as well: ") and "(try 2)" in r.outcome
    boot = next(f for f in rec.failures if f.variant == "B" and f.workload == "*")
    assert boot.error_type == "BootError" and boot.boot_stage == "kernel"
    assert "(try 2)" in boot.error and "attempt 1: " in boot.error and "(try 1)" in boot.error
    assert "boot attempt 2 of 2" in boot.error
    assert boot.console_tail == "(initramfs) 2"
    assert rec.status == "incomplete"


def test_boot_retries_are_configurable_and_zero_means_none(tmp_path):
    for n, attempts in ((0, 1), (3, 4)):
        scn = load_scenario_text(SCENARIO.format(reps=1, order="interleaved", baseline="false")
                                 + f"guest: {{boot_retries: {n}}}\n")
        guests = FakeGuests(hang={"A": 9})
        s = make_session(tmp_path / str(n), scn, guests)
        s.run()
        assert [a for v, a in guests.attempts if v == "A"] == list(range(attempts))
        assert len(store.load_record(s.rd.path).retries) == n


def test_only_boot_errors_are_retried(tmp_path):
    guests = FakeGuests(fail=("B",))  # a GuestError that is not a BootError (e.g. wrong drivers)
    make_session(tmp_path, scenario(reps=1), guests).run()
    assert guests.attempts.count(("B", 0)) == 1 and ("B", 1) not in guests.attempts


def test_a_fresh_boot_per_unit_is_retried_too(tmp_path):
    scn = load_scenario_text(SCENARIO.format(reps=1, order="interleaved", baseline="false")
                             + "fresh_boot: true\n")
    guests = FakeGuests(hang={"C": 1})
    s = make_session(tmp_path, scn, guests)
    s.run()
    rec = store.load_record(s.rd.path)
    # one boot per unit (two workloads), each hung once and retried
    assert rec.failures == [] and [(r.variant, r.repetition) for r in rec.retries] == [("C", 0)] * 2


# ---- resume --------------------------------------------------------------------------------------

def test_resume_skips_finished_units_and_keeps_their_samples(tmp_path):
    scn = scenario(reps=2)
    stop_after = 5

    def interrupt(target):
        raise KeyboardInterrupt

    units = plan(scn, 2)
    u = units[stop_after]
    first = make_session(tmp_path, scn, execute=FakeExecutor({(u.variant, u.workload, 0): interrupt}))
    with pytest.raises(KeyboardInterrupt):
        first.run()
    before = samples_csv(first.rd)
    assert len(before) == stop_after

    rd = store.RunDir.open(first.rd.path)
    ex = FakeExecutor()
    second = make_session(tmp_path, scn, execute=ex, rd=rd)
    assert second.units == units[stop_after:]
    second.run()
    assert ex.calls == [(x.variant, x.workload) for x in units[stop_after:]]
    after = samples_csv(rd)
    assert len(after) == len(units)
    assert [r for r in after if r in before] == before  # the earlier samples are kept as they were
    rec = store.load_record(rd.path)
    assert rec.status == "complete" and rec.missing_units == 0 and len(rec.timing) == 2


def test_resume_of_a_complete_run_boots_nothing(tmp_path):
    scn = scenario(reps=1)
    s = make_session(tmp_path, scn)
    s.run()
    guests, ex = FakeGuests(), FakeExecutor()
    again = make_session(tmp_path, scn, guests, ex, rd=store.RunDir.open(s.rd.path))
    again.run()
    assert guests.boots == [] and ex.calls == []
    assert store.load_record(s.rd.path).status == "complete"


# ---- Ctrl-C -----------------------------------------------------------------------------------

def test_ctrl_c_leaves_an_incomplete_run_and_tears_guests_down(tmp_path):
    scn = scenario(reps=2)
    guests = FakeGuests()
    ex = FakeExecutor({("B", "w2", 0): KeyboardInterrupt()})
    s = make_session(tmp_path, scn, guests, ex)
    with pytest.raises(KeyboardInterrupt):
        s.run()
    assert all(g.closed for g in guests.guests.values())
    rec = store.load_record(s.rd.path)
    assert rec.status == "incomplete" and rec.missing_units == 12 - 3 and rec.finished
    assert rec.failures == []  # an interruption is not a failure of the unit
    assert len(samples_csv(s.rd)) == 3
    assert any("status: incomplete" in line for line in s.lines)


# ---- extension: the unit list may grow while running ------------------------------------------

def test_units_added_while_running_are_measured(tmp_path):
    class OneMore(RunSession):
        def after_unit(self, unit, samples):
            if unit == self.planned[-1] and unit.repetition < 2:
                self.extend(plan(self.scn, 1, first=unit.repetition + 1))

    scn = scenario(reps=1)
    ex = FakeExecutor()
    s = make_session(tmp_path, scn, execute=ex, cls=OneMore)
    s.run()
    assert len(ex.calls) == 3 * 6
    assert s.planned == plan(scn, 3)
    rec = store.load_record(s.rd.path)
    assert rec.status == "complete" and rec.missing_units == 0


def test_fault_seam_is_called_per_unit_and_cancelled(tmp_path):
    seen: list[tuple[str, int]] = []
    cancelled: list[Unit] = []

    class Timer:
        def cancel(self):
            cancelled.append(1)

    def before_unit(guest, variant, rep):
        seen.append((variant, rep))
        return Timer() if variant == "A" else None

    s = make_session(tmp_path, scenario(reps=1))
    s.before_unit = before_unit
    s.run()
    assert len(seen) == 6 and len(cancelled) == 2


def test_store_errors_stop_the_run(tmp_path, monkeypatch):
    s = make_session(tmp_path, scenario(reps=1))
    from vbench.core.errors import StoreError

    def full(*a, **k):
        raise StoreError("cannot write: no space left")

    monkeypatch.setattr(s.rd, "add_samples", full)
    with pytest.raises(StoreError):
        s.run()
    assert store.load_record(s.rd.path).status == "incomplete"


# ---- boots side by side -----------------------------------------------------------------------

class SlowGuests(FakeGuests):
    """Each boot takes a while and counts how many boots run at the same time. ``waits``: variants
    whose boot runs until the run cancels it (then GuestError, as a real guest's boot does)."""

    def __init__(self, waits: tuple[str, ...] = (), **kw) -> None:
        super().__init__(**kw)
        self.waits = waits
        self.lock = threading.Lock()
        self.active = self.most = 0
        self.cancelled: list[str] = []
        self.started: list[str] = []

    def boot(self, stack, v, index, rep, attempt=0, cancel=None):
        with self.lock:
            self.started.append(v.name)
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            if v.name in self.waits:
                assert cancel is not None
                if not cancel.wait(10):
                    raise AssertionError("the boot was never cancelled")
                self.cancelled.append(v.name)
                raise GuestError(f"guest g-{v.name}: boot cancelled, the run is stopping")
            time.sleep(0.3)
            return super().boot(stack, v, index, rep, attempt, cancel)
        finally:
            with self.lock:
                self.active -= 1


@pytest.mark.parametrize("width", [1, 2, 3])
def test_guests_boot_side_by_side_up_to_the_width(tmp_path, width):
    guests, ex = SlowGuests(), FakeExecutor()
    s = make_session(tmp_path, scenario(reps=1), guests, ex)
    s.boot_width = width
    s.run()
    assert guests.most == width   # three variants: never more at once, and as many as allowed
    assert list(s.targets) == ["A", "B", "C"]   # the scenario's order, whatever came up first
    assert ex.calls == [(u.variant, u.workload) for u in plan(scenario(reps=1), 1)]
    assert all(g.log[0] == "suspend" and g.closed for g in guests.guests.values())
    rec = store.load_record(s.rd.path)
    assert rec.status == "complete" and {n: v.guest_name for n, v in rec.variants.items()} == {
        "A": "g-A", "B": "g-B", "C": "g-C"}
    assert (f"booting 3 guests, {width} at a time" in s.lines) == (width > 1)


def test_a_variant_that_fails_while_others_boot_is_skipped_and_the_rest_measured(tmp_path):
    guests, ex = SlowGuests(fail=("B",)), FakeExecutor()
    s = make_session(tmp_path, scenario(reps=1), guests, ex)
    s.boot_width = 3
    s.run()
    assert {v for v, _ in ex.calls} == {"A", "C"}
    rec = store.load_record(s.rd.path)
    assert [(f.variant, f.workload) for f in rec.failures].count(("B", "*")) == 1


def test_a_refusal_while_another_boots_cancels_it_and_boots_no_more(tmp_path):
    # A refuses the image (stops the run), B is still booting: B's boot is cancelled, C never
    # starts, nothing is measured and every guest that came up is torn down.
    guests, ex = SlowGuests(waits=("B",), unfit=("A",)), FakeExecutor()
    s = make_session(tmp_path, scenario(reps=1), guests, ex)
    s.boot_width = 2
    with pytest.raises(ImageUnfit):
        s.run()
    assert guests.cancelled == ["B"] and sorted(guests.started) == ["A", "B"]
    assert ex.calls == [] and all(g.closed for g in guests.guests.values())
    assert store.load_record(s.rd.path).failures == []   # a cancelled boot is no failure of B


def test_ctrl_c_while_guests_boot_cancels_the_boots_and_tears_down_what_came_up(
        tmp_path, monkeypatch):
    import concurrent.futures as cf

    real_wait, calls = cf.wait, []

    def wait(fs, timeout=None, return_when=cf.ALL_COMPLETED):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.6)           # A has come up meanwhile, B is still booting
            raise KeyboardInterrupt
        return real_wait(fs, timeout, return_when)

    monkeypatch.setattr(session.concurrent.futures, "wait", wait)
    guests = SlowGuests(waits=("B",))
    s = make_session(tmp_path, scenario(reps=1), guests, FakeExecutor())
    s.boot_width = 2
    with pytest.raises(KeyboardInterrupt):
        s.run()
    assert guests.cancelled == ["B"] and list(guests.guests) == ["A"]
    assert guests.guests["A"].closed   # came up while the run stopped: torn down all the same
    rec = store.load_record(s.rd.path)
    assert rec.status == "incomplete" and rec.failures == []
