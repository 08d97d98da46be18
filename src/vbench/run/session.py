"""The run loop: boot each variant once, visit the units in plan order, recover, record.

A :class:`RunSession` owns one run in progress: the scenario, the run directory and its typed
record, the units still to measure (a list that may grow while running, e.g. for adaptive
repetitions), the booted targets and the variants that died. Everything that touches a VM comes
in through two seams, so that recovery, failed variants, resume and the interleaved order are
unit-tested with fakes:

- ``guests``: a :class:`GuestFactory` that boots and verifies one variant's guest (the real one is
  ``runner.LabGuests``: libvirt + SSH + verify.py) and a host-baseline target;
- ``execute``: the executor of one workload on one target (``executors.execute``).

Test-only fault injection enters through one more explicit seam, ``before_unit`` (``None`` in
production unless ``VBENCH_FAULTS`` is set; :func:`vbench.run.faults.install` is the one place it is
wired in).

A boot that fails with :class:`~vbench.core.errors.BootError` (hung, died, no lease, no SSH) is tried
again with a fresh guest up to ``guest.boot_retries`` times; each retry is recorded
(``RunRecord.retries``) with the reason and how the next attempt went.

The variants' guests boot side by side, ``boot_width`` at a time (one boot keeps about one host
CPU busy; the runner sets it from the measuring host's CPUs): nothing is measured while any guest
boots, each guest is paused as soon as it is verified, and a run interrupted while booting stops
the boots still waiting (``cancel``) and tears down every guest that came up.

What a guest object must offer the loop: ``name``, ``xml``, ``boot_seconds``, ``check_alive()``,
``is_paused()``, ``suspend()``, ``resume()``, ``reconnect()``, ``console_tail()`` and
``ssh.run(cmd, timeout)`` / ``ssh.is_alive()``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from vbench.core.errors import GuestError, StoreError, UserError
from vbench.run.executors import Target
from vbench.core.sidebyside import side_by_side
from vbench.core.metrics import Sample
from vbench.results.record import DriverCheck, Failure, HostProof, RunRecord, Timing
from vbench.core.errors import BootError
from vbench.results.record import Retry
from vbench.core.policy import HOST_VARIANT
from vbench.scenario.schema import Scenario, Variant, Workload
from vbench.workloads.common import EXITS_ABSENT_FACT
from vbench.results.rundir import RunDir, unit_key

Say = Callable[[str], None]
Executor = Callable[[Scenario, Workload, Target], "tuple[list[Sample], str]"]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# (guest or None, variant, repetition) -> something to cancel after the unit, or None
BeforeUnit = Callable[[Any, str, int], "Cancellable | None"]


@dataclass(frozen=True)
class Unit:
    repetition: int
    variant: str
    workload: str

    @property
    def key(self) -> str:
        return unit_key(self.variant, self.workload, self.repetition)  # no two units share one


def plan(scn: Scenario, repetitions: int, first: int = 0) -> list[Unit]:
    """Units in measuring order: variants rotate by one each repetition (interleaved).

    ``first`` starts at a later repetition (more repetitions appended to a running plan keep the
    rotation going).
    """
    names = [v.name for v in scn.variants] + ([HOST_VARIANT] if scn.host_baseline else [])
    units = []
    for r in range(first, first + repetitions):
        k = r % len(names) if scn.order == "interleaved" else 0
        for v in names[k:] + names[:k]:
            for w in scn.workloads:
                units.append(Unit(r, v, w.name))
    return units


@dataclass
class Booted:
    """A variant's guest, up and verified: its target and what verification found."""

    target: Target
    checks: list[Any] = field(default_factory=list)   # verify.DriverCheck
    fio_version: str = ""
    proofs: list[Any] = field(default_factory=list)   # verify.HostProof (seen on the host)


class GuestFactory(Protocol):
    def boot(self, stack: contextlib.ExitStack, variant: Variant, index: int,
             rep: int | None, attempt: int = 0, cancel: threading.Event | None = None) -> Booted:
        """Boot ``variant``'s guest (torn down by ``stack``) and verify its drivers; UserError if
        it cannot come up (BootError: worth another attempt) or runs the wrong drivers.
        ``attempt``: 0 for the first boot, n for the n-th retry (a fresh guest). Once ``cancel``
        is set, a boot still waiting for its guest stops with GuestError (called from a thread
        of its own when guests boot side by side)."""
        ...

    def host(self, stack: contextlib.ExitStack) -> Target:
        """The host-baseline target (its files removed by ``stack``)."""
        ...


class Progress:
    """Live lines with a count, the current unit and an estimate of the time left."""

    def __init__(self, say: Say, scn: Scenario, units: list[Unit]) -> None:
        self.say, self.scn, self.units = say, scn, units
        self.t0 = time.monotonic()
        self.done_est = 0.0
        self.n = 0

    @property
    def total_est(self) -> float:
        return sum(unit_estimate(self.scn, u.workload) for u in self.units) or 1.0

    def start(self, u: Unit) -> None:
        if self.n == 0:
            self.t0 = time.monotonic()  # boots are done: estimate from measuring time only
        self.n += 1

    def finish(self, u: Unit, note: str) -> None:
        self.done_est += unit_estimate(self.scn, u.workload)
        elapsed = time.monotonic() - self.t0
        rate = elapsed / self.done_est if self.done_est else 1.0
        left = (self.total_est - self.done_est) * rate
        self.say(f"[{self.n:>3}/{len(self.units)}] rep {u.repetition + 1} {u.variant:<12} "
                 f"{u.workload:<20} {note:<28} elapsed {fmt_time(elapsed)}, ~{fmt_time(left)} left")


def fmt_time(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def unit_estimate(scn: Scenario, wname: str) -> float:
    w = next(w for w in scn.workloads if w.name == wname)
    return w.kind.estimate_s(w.spec, scn)


def headline_metric(w: Workload) -> str:
    """The one metric the live lines and the summary show for a workload."""
    return w.kind.headline_of(w.spec)


def headline(samples: list[Sample], w: Workload) -> str:
    m = headline_metric(w)
    for s in samples:
        if s.metric == m:
            return f"{s.value:,.0f} {s.unit}" if s.value >= 100 else f"{s.value:.3g} {s.unit}"
    return f"{len(samples)} samples"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class RunSession:
    """One run (new or resumed) from its first boot to its final record."""

    boot_width = 1  # guests booted side by side (the runner sets it from the host's CPUs)

    def __init__(self, scn: Scenario, rd: RunDir, rec: RunRecord, guests: GuestFactory,
                 execute: Executor, say: Say, repetitions: int,
                 before_unit: BeforeUnit | None = None) -> None:
        self.scn, self.rd, self.rec, self.guests, self.execute = scn, rd, rec, guests, execute
        self.say, self.before_unit = say, before_unit
        self.planned: list[Unit] = plan(scn, repetitions)   # every unit the run should have
        self.units: list[Unit] = [u for u in self.planned if not rd.has_part(u.key)]  # to do
        self.targets: dict[str, Target] = {}
        self.dead: dict[str, str] = {}          # variant -> why its remaining units are skipped
        self.workload_s = 0.0
        self.progress = Progress(say, scn, self.units)
        self._wmap = {w.name: w for w in scn.workloads}
        self._vindex = {v.name: (i, v) for i, v in enumerate(scn.variants)}
        self._rec_lock = threading.RLock()  # boot threads record retries while others boot

    # ---- extension points ---------------------------------------------------------------------

    def extend(self, units: list[Unit]) -> None:
        """Add units to measure (also while running: the loop picks them up)."""
        self.planned.extend(units)
        self.units.extend(u for u in units if not self.rd.has_part(u.key))

    def after_unit(self, unit: Unit, samples: list[Sample] | None) -> None:
        """Called after every unit (``samples`` is None when it failed); a subclass may
        ``extend`` the plan here."""

    # ---- the run --------------------------------------------------------------------------------

    def run(self) -> None:
        """Measure every unit; on Ctrl-C keep what is stored, mark the run incomplete, re-raise."""
        t_start = time.monotonic()
        interrupted = False
        try:
            with contextlib.ExitStack() as stack:
                self._boot_all(stack)
                i = 0
                while i < len(self.units):   # not a for loop: the list may grow
                    self._run_unit(self.units[i])
                    i += 1
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self._finish(interrupted, time.monotonic() - t_start)
        if interrupted:
            raise KeyboardInterrupt

    def _boot_all(self, stack: contextlib.ExitStack) -> None:
        needed = {u.variant for u in self.units}
        jobs = [(i, v) for i, v in enumerate(self.scn.variants)
                if v.name in needed and not self.scn.fresh_boot]
        width = max(1, min(self.boot_width, len(jobs)))
        if width > 1:
            self.say(f"booting {len(jobs)} guests, {width} at a time")
        up = self._boot_side_by_side(stack, jobs, width)
        for _, v in jobs:   # the targets in the scenario's order, whatever order they came up in
            if v.name in up:
                self.targets[v.name] = up[v.name]
        if HOST_VARIANT in needed:
            self.targets[HOST_VARIANT] = self.guests.host(stack)

    def _boot_side_by_side(self, stack: contextlib.ExitStack, jobs: list[tuple[int, Variant]],
                           width: int) -> dict[str, Target]:
        """Boot ``jobs`` ``width`` at a time; each guest is recorded and paused as it comes up.
        A variant that cannot come up is dead (its units are skipped); an error that stops the
        run, or Ctrl-C, cancels the boots not yet done and raises once every boot thread ended.
        Every guest that came up is torn down by ``stack`` (side_by_side hands it over)."""
        up: dict[str, Target] = {}

        def one(job: tuple[int, Variant], own: contextlib.ExitStack,
                cancel: threading.Event) -> Booted:
            return self._boot_retrying(own, job[1], job[0], None, cancel)

        def came_up(job: tuple[int, Variant],
                    fut: concurrent.futures.Future) -> BaseException | None:
            return self._came_up(fut, job[1], up)

        side_by_side(stack, jobs, width, one, came_up)
        return up

    def _came_up(self, fut: concurrent.futures.Future, v: Variant,
                 up: dict[str, Target]) -> BaseException | None:
        """One finished boot: record and pause its guest, or mark the variant dead. Returns the
        error that stops the run, if any."""
        exc = fut.exception()
        if exc is None:
            try:
                up[v.name] = self._booted(v, fut.result()[0])
                return None
            except UserError as e:
                exc = e
        if not isinstance(exc, UserError) or exc.stops_run:
            return exc   # e.g. the guest image lacks a tool: no variant can be measured
        self.dead[v.name] = str(exc)
        self.record_failure(v.name, "*", None, exc)
        self.say(f"variant {v.name} failed to come up: {exc}")
        return None

    def _boot(self, stack: contextlib.ExitStack, v: Variant, index: int, rep: int | None) -> Target:
        return self._booted(v, self._boot_retrying(stack, v, index, rep))

    def _booted(self, v: Variant, booted: Booted) -> Target:
        """Record what verification found on ``v``'s guest, then pause it until its units."""
        t, g = booted.target, booted.target.guest
        if g is None:
            raise GuestError(f"variant {v.name}: the guest factory returned no guest")
        with self._rec_lock:
            vm = self.rec.variants[v.name]
            vm.domain_xml, vm.guest_kernel = g.xml, t.facts.get("kernel", "")
            vm.guest_virt = str(t.facts.get("virt", ""))
            vm.guest_clocksource = str(t.facts.get("clocksource", ""))[:40]
            vm.boot_seconds = round(g.boot_seconds or 0.0, 1)
            vm.drivers = {c.device: DriverCheck(model=c.model, expected=c.expected, found=c.found,
                                                ok=c.ok, detail=c.detail) for c in booted.checks}
            vm.host_proofs = {p.name: HostProof(asked=p.asked, used=p.used, evidence=p.evidence,
                                                ok=p.ok) for p in booted.proofs}
            vm.fio_version, vm.guest_name = booted.fio_version, g.name
            self.rd.write_record(self.rec)
        self.say(f"{v.name}: " + ", ".join(f"{c.device}={c.found}" for c in booted.checks)
                 + "".join(f", {p.name}: {p.evidence}" for p in booted.proofs) + " (verified)")
        g.suspend()
        return t

    def _boot_retrying(self, stack: contextlib.ExitStack, v: Variant, index: int,
                       rep: int | None, cancel: threading.Event | None = None) -> Booted:
        """Boot ``v``; a boot that fails with BootError is tried again with a fresh guest, up to
        ``guest.boot_retries`` times. The last failure carries every attempt's reason."""
        retries = self.scn.guest.boot_retries
        earlier: list[Retry] = []
        for attempt in range(retries + 1):
            try:
                booted = self.guests.boot(stack, v, index, rep, attempt, cancel)
            except BootError as exc:
                if cancel is not None and cancel.is_set():
                    raise   # the run stops: no retry
                with self._rec_lock:
                    if earlier:
                        earlier[-1].outcome = f"failed as well: {exc}"
                    if attempt == retries:
                        self.rd.write_record(self.rec)
                        if not earlier:
                            raise
                        raise exc.after_attempts(retries + 1, [f"attempt {r.attempt}: {r.error}"
                                                               for r in earlier]) from None
                    r = Retry(variant=v.name, repetition=rep, attempt=attempt + 1, error=str(exc),
                              boot_stage=exc.stage, console_tail=exc.console_tail,
                              console=getattr(exc, "console_file", ""))
                    earlier.append(r)
                    self.rec.retries.append(r)
                    self.rd.write_record(self.rec)
                self.say(f"{v.name}: boot attempt {attempt + 1} failed ({exc}); retrying with a "
                         f"fresh guest")
                continue
            if earlier:
                with self._rec_lock:
                    earlier[-1].outcome = "booted"
                    self.rd.write_record(self.rec)
            return booted
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_unit(self, u: Unit) -> None:
        self.progress.start(u)
        if u.variant in self.dead:
            self.record_failure(u.variant, u.workload, u.repetition,
                                GuestError(f"skipped: {self.dead[u.variant]}"))
            self.progress.finish(u, "skipped (variant failed)")
            self.after_unit(u, None)
            return
        try:
            samples, raw = self._measure(u)
            self.rd.write_raw(u.variant, f"{u.workload}-r{u.repetition}.txt", raw)
            self.rd.add_samples(u.key, self.sample_rows(u, samples))
            self._note_absent_exits(u)
        except StoreError:
            raise
        except Exception as exc:
            if isinstance(exc, UserError) and exc.stops_run:
                raise
            self._unit_failed(u, exc)
            self.after_unit(u, None)
            return
        self.progress.finish(u, headline(samples, self._wmap[u.workload]))
        self.after_unit(u, samples)

    def _measure(self, u: Unit) -> tuple[list[Sample], str]:
        with contextlib.ExitStack() as unit_stack:
            if self.scn.fresh_boot and u.variant != HOST_VARIANT:
                # Boot-time facts need a boot per sample: this guest lives for one unit.
                i, v = self._vindex[u.variant]
                self.targets[u.variant] = self._boot(unit_stack, v, i, u.repetition)
                self.targets[u.variant].facts["fresh_boot"] = True
            t = self.targets[u.variant]
            with resumed(t):
                if self.before_unit is not None:
                    fault = self.before_unit(t.guest, u.variant, u.repetition)
                    if fault is not None:
                        unit_stack.callback(fault.cancel)
                tw = time.monotonic()
                out = self.execute(self.scn, self._wmap[u.workload], t)
                self.workload_s += time.monotonic() - tw
        return out

    def _note_absent_exits(self, u: Unit) -> None:
        """Keep in the run record why the unit has no KVM exit rows (never a silent gap)."""
        t = self.targets.get(u.variant)
        absent = t.facts.pop(EXITS_ABSENT_FACT, None) if t is not None else None
        vm = self.rec.variants.get(u.variant)
        if absent and vm is not None and {**vm.kvm_exits_absent, **absent} != vm.kvm_exits_absent:
            vm.kvm_exits_absent = {**vm.kvm_exits_absent, **absent}
            self.rd.write_record(self.rec)

    def _unit_failed(self, u: Unit, exc: Exception) -> None:
        if not isinstance(exc, UserError):
            # A bug, not a fault of the guest: record it loudly, keep the run going.
            exc = UserError(f"internal error in vbench ({type(exc).__name__}: {exc}); please "
                            f"report it: " + " | ".join(traceback.format_exc().splitlines()[-3:]))
        t = self.targets.get(u.variant)
        g = t.guest if t is not None else None
        if g is not None and not getattr(exc, "console_tail", ""):
            exc.console_tail = g.console_tail()  # type: ignore[attr-defined]
        self.record_failure(u.variant, u.workload, u.repetition, exc)
        self.progress.finish(u, "FAILED")
        self.say(f"      {u.variant}/{u.workload} rep {u.repetition + 1} failed: {exc}")
        if g is not None and not self.scn.fresh_boot:
            why = recover(g)
            if why:
                self.dead[u.variant] = why
                self.say(f"      {u.variant}: {why}; its remaining units are skipped")

    def _finish(self, interrupted: bool, wall: float) -> None:
        rec = self.rec
        missing = [u for u in self.planned if not self.rd.has_part(u.key)]
        rec.status = "complete" if not missing and not interrupted else "incomplete"
        rec.missing_units = len(missing)
        rec.finished = now()
        rec.timing.append(Timing(wall_s=round(wall, 1), workload_s=round(self.workload_s, 1),
                                 workload_share=round(self.workload_s / wall, 3) if wall else None))
        self.rd.write_record(rec)
        n = self.rd.consolidate()
        self.say(f"stored {n} samples in {self.rd.path / 'samples.csv'} (status: {rec.status})")

    # ---- bookkeeping ------------------------------------------------------------------------------

    def record_failure(self, variant: str, workload: str, rep: int | None,
                       exc: BaseException) -> None:
        with self._rec_lock:
            self.rec.failures.append(Failure(variant=variant, workload=workload, repetition=rep,
                                             error=str(exc), error_type=type(exc).__name__,
                                             console_tail=getattr(exc, "console_tail", ""),
                                             boot_stage=getattr(exc, "stage", "")))
            self.rd.write_record(self.rec)

    def sample_rows(self, unit: Unit, samples: list[Sample]) -> list[dict]:
        v, env = self.rec.variants[unit.variant], self.rec.environment
        return [{"run_id": self.rd.run_id, "scenario": self.scn.name, "variant": unit.variant,
                 "device": v.device, "model": v.model, "paravirtual": v.paravirtual,
                 "workload": s.workload, "repetition": unit.repetition, "metric": s.metric,
                 "value": repr(float(s.value)), "unit": s.unit, "accelerator": env.accelerator,
                 "host": env.host} for s in samples]


def recover(guest: Any) -> str | None:
    """After a failed unit: None if the guest can go on, else why it cannot.

    A dead guest (crash, panic, destroyed from outside) cannot; a guest whose SSH connection or
    sshd died gets one reconnect; a hung workload was already killed by its in-guest timeout.
    """
    try:
        guest.check_alive()
    except GuestError as exc:
        return f"guest is gone ({exc})"
    with contextlib.suppress(UserError):  # no connection, or a broken one: reconnect below
        if guest.ssh.is_alive() and guest.ssh.run("true", timeout=15, check=False).ok:
            return None
    try:
        if guest.is_paused():
            guest.resume()
        guest.reconnect()
        return None
    except UserError as exc:
        return f"guest no longer answers over SSH ({exc})"


@contextlib.contextmanager
def resumed(t: Target) -> Iterator[None]:
    """Run the body with ``t``'s guest resumed, and suspend it again afterwards."""
    g = t.guest
    if g is None:
        yield
        return
    g.check_alive()
    if g.is_paused():
        g.resume()
        # Let the guest answer once before measuring: after a long pause it has timers to catch up.
        g.ssh.run("true", timeout=30, check=False)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if not g.is_paused():
                g.suspend()
