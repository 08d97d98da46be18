"""The runner: a scenario in, a results directory out.

For each variant it boots one guest (device profile -> domain XML), proves the intended drivers
are bound, and suspends it. Repetitions then visit the variants in rotated order (A B C D, B C D A,
...), resuming only the guest under test, so host drift hits every variant alike without a reboot
per switch. Each finished unit (variant x workload x repetition) is stored at once as its own
atomic part; a failed unit is recorded with its reason and the run goes on. On Ctrl-C/SIGTERM all
guests are destroyed, samples so far are kept and the run is marked incomplete; ``--resume``
finishes the missing units later.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from . import __version__, faults, images, lab, paths, remote, verify
from .errors import GuestError, StoreError, UserError
from .executors import Target, execute
from .scenario import Scenario, load_scenario, load_scenario_text
from .record import DriverCheck, Environment, Failure, RunRecord, ScenarioInfo, Timing, Variant, WorkloadInfo
from .store import RunDir, load_record
from .virt import Guest, claim_dir, make_scratch

HEADLINE = {"fio": "iops", "iperf3": "throughput", "ping": "rtt_p50", "entropy": "hwrng_read_rate",
            "balloon": "host_mem_returned"}


@dataclass(frozen=True)
class Unit:
    repetition: int
    variant: str
    workload: str

    @property
    def key(self) -> str:
        return f"{self.variant}__{self.workload}__r{self.repetition}"


def plan(scn: Scenario, repetitions: int) -> list[Unit]:
    """Units in measuring order: variants rotate by one each repetition (interleaved)."""
    names = [v.name for v in scn.variants] + (["host"] if scn.host_baseline else [])
    units = []
    for r in range(repetitions):
        k = r % len(names) if scn.order == "interleaved" else 0
        for v in names[k:] + names[:k]:
            for w in scn.workloads:
                units.append(Unit(r, v, w.name))
    return units


def _fmt_time(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _unit_estimate(scn: Scenario, wname: str) -> float:
    w = next(w for w in scn.workloads if w.name == wname)
    if w.fio:
        rt, ramp = scn.fio_runtime(w)
        return rt + ramp + 1.5
    if w.iperf3:
        return w.iperf3.duration + 3
    if w.ping:
        return w.ping.count * w.ping.interval + 2
    return 10.0


class Progress:
    """Live lines with a count, the current unit and an estimate of the time left."""

    def __init__(self, say, scn: Scenario, units: list[Unit]) -> None:
        self.say, self.scn, self.units = say, scn, units
        self.t0 = time.monotonic()
        self.done_est = 0.0
        self.total_est = sum(_unit_estimate(scn, u.workload) for u in units) or 1.0
        self.n = 0

    def start(self, u: Unit) -> None:
        if self.n == 0:
            self.t0 = time.monotonic()  # boots are done: estimate from measuring time only
        self.n += 1

    def finish(self, u: Unit, note: str) -> None:
        self.done_est += _unit_estimate(self.scn, u.workload)
        elapsed = time.monotonic() - self.t0
        rate = elapsed / self.done_est if self.done_est else 1.0
        left = (self.total_est - self.done_est) * rate
        self.say(f"[{self.n:>3}/{len(self.units)}] rep {u.repetition + 1} {u.variant:<12} "
                 f"{u.workload:<20} {note:<28} elapsed {_fmt_time(elapsed)}, ~{_fmt_time(left)} left")


def _sample_rows(run_id: str, scn: Scenario, variant: str, rec: RunRecord, unit: Unit,
                 samples) -> list[dict]:
    v = rec.variants[variant]
    return [{"run_id": run_id, "scenario": scn.name, "variant": variant, "device": v.device,
             "model": v.model, "paravirtual": v.paravirtual, "workload": s.workload,
             "repetition": unit.repetition, "metric": s.metric, "value": repr(float(s.value)),
             "unit": s.unit, "accelerator": rec.environment.accelerator,
             "host": rec.environment.host} for s in samples]


def headline_metric(w) -> str:
    """The one metric the live lines and the summary show for a workload."""
    if w.fio is not None and w.fio.rw in ("read", "write"):
        return "bw"
    return HEADLINE.get(w.tool, "")


def _headline(samples, w) -> str:
    m = headline_metric(w)
    for s in samples:
        if s.metric == m:
            return f"{s.value:,.0f} {s.unit}" if s.value >= 100 else f"{s.value:.3g} {s.unit}"
    return f"{len(samples)} samples"


def summary_rows(run_path: Path, scn: Scenario) -> list[tuple]:
    from .store import iter_sample_rows

    vals: dict[tuple, list[float]] = {}
    units: dict[str, str] = {}
    for row in iter_sample_rows(run_path):
        # Network and ping samples carry the direction: workload "tcp-1" stores "tcp-1-h2g".
        w = next((w for w in scn.workloads if row["workload"] in
                  (w.name, f"{w.name}-h2g", f"{w.name}-g2h")), None)
        if w is None or row["metric"] != headline_metric(w):
            continue
        vals.setdefault((row["workload"], row["variant"]), []).append(float(row["value"]))
        units[row["workload"]] = f"{row['metric']} ({row['unit']})"
    rows = []
    for (wl, var), xs in vals.items():
        rows.append((wl, units[wl], var, f"{statistics.median(xs):,.1f}", len(xs)))
    order = {v.name: i for i, v in enumerate(scn.variants)}
    rows.sort(key=lambda r: (r[0], order.get(r[2], 99)))
    return rows


def _new_run_id(scn: Scenario) -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{scn.name}"


def _initial_record(run_id: str, scn: Scenario, scenario_file: str, text: str, env: Environment,
                    reps: int) -> RunRecord:
    variants: dict[str, Variant] = {}
    for v in scn.variants:
        prof = scn.profile(v)
        variants[v.name] = Variant(device=scn.device, model=prof.model_of(scn.device),
                                   paravirtual=prof.is_paravirtual(scn.device),
                                   profile=prof.model_dump(), baseline=False)
    if scn.host_baseline:
        variants["host"] = Variant(device="host", model="host", paravirtual=False, baseline=True,
                                   profile=None)
    workloads = {}
    for w in scn.workloads:
        spec = getattr(w, w.tool).model_dump()
        if w.fio:
            rt, ramp = scn.fio_runtime(w)
            spec = {"options": scn.fio_options(w), "runtime": rt, "ramp_time": ramp}
        workloads[w.name] = WorkloadInfo(tool=w.tool, options=spec)
    return RunRecord(run_id=run_id, status="running", started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     finished=None, vbench_version=__version__,
                     scenario=ScenarioInfo(name=scn.name, file=scenario_file, text=text,
                                           description=scn.description),
                     repetitions=reps, environment=env, variants=variants, workloads=workloads)


def run_scenario(scn: Scenario, text: str, scenario_file: str, results_root: Path,
                 connect: str | None, accel_override: str | None, say,
                 repetitions: int | None = None, resume: Path | None = None) -> Path:
    """Run (or resume) a scenario; returns the run directory."""
    reps = repetitions or scn.repetitions
    say(f"scenario {scn.name}: {len(scn.variants)} variants x {len(scn.workloads)} workloads x "
        f"{reps} repetitions ({scn.order})")
    lb = lab.up(connect=connect, progress=say)
    img = images.find("debian12") if scn.guest.image == "default" else images.find(scn.guest.image)
    if img is None:
        say("guest image not built yet: building it now (cached for later runs)")
        img, _, secs = images.build("debian12" if scn.guest.image == "default" else scn.guest.image,
                                    progress=say)
        say(f"image built in {secs:.0f} s")
    from . import kconfig

    kconfig.require_for_scenario(scn, img)
    acc = lab.accelerator(lb, img.kernel, override=accel_override)
    say(f"accelerator: {acc.name.upper()} ({acc.reason})")
    if resume is not None:
        rd = RunDir.open(resume)
        meta = rd.read_record()
        reps = meta.repetitions or reps
        if meta.environment.accelerator != acc.name:
            raise UserError(f"{resume} was measured under {meta.environment.accelerator}, "
                            f"this host would use {acc.name}: results must not be mixed")
        meta.status = "running"
        meta.resumed.append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    else:
        env = Environment.model_validate(lab.host_facts(lb.uri))
        env.accelerator, env.accelerator_reason = acc.name, acc.reason
        env.guest_image, env.guest_image_key = str(img.dir), img.manifest.get("key")
        env.vbench_version, env.python = __version__, platform.python_version()
        rd = RunDir.create(results_root, _new_run_id(scn))
        meta = _initial_record(rd.run_id, scn, scenario_file, text, env, reps)
    rd.write_record(meta)
    say(f"results: {rd.path}")
    units = [u for u in plan(scn, reps) if not rd.has_part(u.key)]
    prog = Progress(say, scn, units)
    pkey, pub = remote.new_client_key()  # a fresh client key for this run only
    targets: dict[str, Target] = {}
    dead: dict[str, str] = {}
    interrupted = False
    t_start = time.monotonic()
    timing = {"workload_s": 0.0}
    try:
        with contextlib.ExitStack() as stack:
            needed = {u.variant for u in units}
            vindex = {v.name: (i, v) for i, v in enumerate(scn.variants)}
            for i, v in enumerate(scn.variants):
                if v.name not in needed or scn.fresh_boot:
                    continue
                try:
                    targets[v.name] = _boot_variant(stack, scn, v, i, lb, img, acc, pkey, pub, rd,
                                                    meta, say)
                except UserError as exc:
                    dead[v.name] = str(exc)
                    _record_failure(rd, meta, v.name, "*", None, exc)
                    say(f"variant {v.name} failed to come up: {exc}")
            if "host" in needed:
                targets["host"] = _host_target(stack, scn, rd)
            wmap = {w.name: w for w in scn.workloads}
            for u in units:
                prog.start(u)
                if u.variant in dead:
                    _record_failure(rd, meta, u.variant, u.workload, u.repetition,
                                    GuestError(f"skipped: {dead[u.variant]}"), quiet=True)
                    prog.finish(u, "skipped (variant failed)")
                    continue
                try:
                    with contextlib.ExitStack() as unit_stack:
                        if scn.fresh_boot and u.variant != "host":
                            # Boot-time facts need a boot per sample: this guest lives for one unit.
                            i, v = vindex[u.variant]
                            targets[u.variant] = _boot_variant(unit_stack, scn, v, i, lb, img, acc,
                                                               pkey, pub, rd, meta, say, u.repetition)
                            targets[u.variant].facts["fresh_boot"] = True
                        t = targets[u.variant]
                        with _resumed(t):
                            fault = faults.before_unit(t.guest, u.variant, u.repetition)
                            if fault is not None:
                                unit_stack.callback(fault.cancel)
                            tw = time.monotonic()
                            samples, raw = execute(scn, wmap[u.workload], t)
                            timing["workload_s"] += time.monotonic() - tw
                    rd.write_raw(u.variant, f"{u.workload}-r{u.repetition}.txt", raw)
                    rd.add_samples(u.key, _sample_rows(rd.run_id, scn, u.variant, meta, u, samples))
                    prog.finish(u, _headline(samples, wmap[u.workload]))
                except StoreError:
                    raise
                except (UserError, Exception) as exc:
                    if not isinstance(exc, UserError):
                        # A bug, not a fault of the guest: record it loudly, keep the run going.
                        import traceback

                        exc = UserError(f"internal error in vbench ({type(exc).__name__}: {exc}); "
                                        f"please report it: "
                                        + " | ".join(traceback.format_exc().splitlines()[-3:]))
                    t = targets.get(u.variant)
                    g = t.guest if t is not None else None
                    if g is not None and not getattr(exc, "console_tail", ""):
                        exc.console_tail = g.console_tail()  # type: ignore[attr-defined]
                    _record_failure(rd, meta, u.variant, u.workload, u.repetition, exc)
                    prog.finish(u, "FAILED")
                    say(f"      {u.variant}/{u.workload} rep {u.repetition + 1} failed: {exc}")
                    if g is not None and not scn.fresh_boot:
                        why = _recover(g)
                        if why:
                            dead[u.variant] = why
                            say(f"      {u.variant}: {why}; its remaining units are skipped")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        missing = [u for u in plan(scn, reps) if not rd.has_part(u.key)]
        meta.status = "complete" if not missing and not interrupted else "incomplete"
        meta.missing_units = len(missing)
        meta.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        wall = time.monotonic() - t_start
        meta.timing.append(Timing(wall_s=round(wall, 1), workload_s=round(timing["workload_s"], 1),
                                  workload_share=round(timing["workload_s"] / wall, 3) if wall else None))
        rd.write_record(meta)
        n = rd.consolidate()
        say(f"stored {n} samples in {rd.path / 'samples.csv'} (status: {meta.status})")
    if interrupted:
        raise KeyboardInterrupt
    return rd.path


def _recover(guest) -> str | None:
    """After a failed unit: None if the guest can go on, else why it cannot.

    A dead guest (crash, panic, destroyed from outside) cannot; a guest whose SSH connection or
    sshd died gets one reconnect; a hung workload was already killed by its in-guest timeout.
    """
    try:
        guest.check_alive()
    except GuestError as exc:
        return f"guest is gone ({exc})"
    if guest.ssh is not None and guest.ssh.is_alive() and guest.ssh.run("true", timeout=15).ok:
        return None
    try:
        if guest.is_paused():
            guest.resume()
        guest.reconnect()
        return None
    except UserError as exc:
        return f"guest no longer answers over SSH ({exc})"


@contextlib.contextmanager
def _resumed(t: Target):
    g = t.guest
    if g is None:
        yield
        return
    g.check_alive()
    if g.is_paused():
        g.resume()
        # Let the guest answer once before measuring: after a long pause it has timers to catch up.
        g.ssh.run("true", timeout=30)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if not g.is_paused():
                g.suspend()


def _record_failure(rd: RunDir, meta: RunRecord, variant: str, workload: str, rep, exc,
                    quiet=False) -> None:
    meta.failures.append(Failure(variant=variant, workload=workload, repetition=rep, error=str(exc),
                                 error_type=type(exc).__name__,
                                 console_tail=getattr(exc, "console_tail", "")))
    rd.write_record(meta)


def _boot_variant(stack, scn, v, index, lb, img, acc, pkey, pub, rd, meta, say, rep=None) -> Target:
    prof = scn.profile(v)
    suffix = "" if rep is None else f"-r{rep}"
    name = f"vbench-{rd.run_id[-22:]}-{index}-{v.name}{suffix}"[:90]
    g = Guest(name, lb, img, prof, scn.guest, acc, pkey, pub,
              tags={"run": rd.run_id, "variant": v.name}, progress=say)
    g.keep_console = rd.raw_path(v.name, f"console{suffix}.log")
    stack.enter_context(g)
    checks, facts = verify.verify_guest(g, prof)
    fio_v = g.ssh.run("fio --version", timeout=20).stdout.strip()
    vm = meta.variants[v.name]
    vm.domain_xml, vm.guest_kernel = g.xml, facts.get("kernel", "")
    vm.boot_seconds = round(g.boot_seconds, 1)
    vm.drivers = {c.device: DriverCheck(model=c.model, expected=c.expected, found=c.found, ok=c.ok,
                                        detail=c.detail) for c in checks}
    vm.fio_version, vm.guest_name = fio_v, g.name
    rd.write_record(meta)
    say(f"{v.name}: " + ", ".join(f"{c.device}={c.found}" for c in checks) + " (verified)")
    g.suspend()
    return Target(v.name, g, facts, lab=lb)


def _host_target(stack, scn: Scenario, rd: RunDir) -> Target:
    """The host baseline: the same fio jobs against the same kind of backing file on the host."""
    disk = scn.profile(scn.variants[0]).disk
    assert disk is not None
    d = paths.guests_dir() / f"vbench-host-{rd.run_id}"
    d.mkdir(parents=True, exist_ok=True)
    stack.callback(shutil.rmtree, d, True)
    claim_dir(d)
    f = d / "scratch.raw"
    make_scratch(f, disk.size_gib, disk.preallocate)
    return Target("host", None, {}, host_scratch=f)


# ---- CLI ---------------------------------------------------------------------------------------

def cli(args, say) -> int:
    resume = Path(args.resume) if args.resume else None
    if resume is not None:
        stored = load_record(resume)
        text = stored.scenario.text
        scn = load_scenario_text(text, where=f"{resume}/run.json scenario")
        scenario_file = stored.scenario.file
        results_root = resume.parent
    else:
        if not args.scenario:
            raise UserError("name a scenario file (e.g. `vbench run scenarios/disk.yaml`) or --resume RUN")
        scn = load_scenario(args.scenario)
        text = Path(args.scenario).read_text()
        scenario_file = args.scenario
        results_root = Path(args.results)
    if args.repetitions is not None and args.repetitions < 1:
        raise UserError("--repetitions must be at least 1")
    from . import budget

    # Before anything boots: a scenario from someone else must fit this host and --max-hours.
    reps = meta.get("repetitions") if resume is not None else (args.repetitions or scn.repetitions)
    if not isinstance(reps, int) or isinstance(reps, bool) or reps < 1:
        raise StoreError(f"{resume}/run.json: repetitions {reps!r} is not a positive whole number")
    budget.check(scn, reps, max_hours=getattr(args, "max_hours", None) or budget.DEFAULT_MAX_HOURS)
    t0 = time.monotonic()
    run_path = run_scenario(scn, text, scenario_file, results_root, args.connect, args.accel, say,
                            repetitions=args.repetitions, resume=resume)
    rows = summary_rows(run_path, scn)
    if rows:
        from .cli import _table

        say("")
        say(_table(rows, ("workload", "metric", "variant", "median", "n")))
    done = load_record(run_path)
    if done.failures:
        say(f"{len(done.failures)} failure(s) recorded in {run_path / 'run.json'}")
    if not args.no_report:
        try:
            from .report import build_report

            out = build_report([run_path], Path(args.reports) / run_path.name)
            say(f"report: {out}")
        except UserError as exc:
            say(f"report not written: {exc}")
        except Exception as exc:  # the results are safe; a report bug must not hide them
            say(f"report not written (bug: {type(exc).__name__}: {exc}); results are intact, rebuild "
                f"it with `vbench report {run_path}`")
    say(f"took {_fmt_time(time.monotonic() - t0)}")
    say(f"run: {run_path}")
    return 0 if done.status == "complete" and not done.failures else 11
