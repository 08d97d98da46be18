"""The runner: a scenario in, a results directory out.

It sets a run up (lab, image, kernel options, accelerator, a new or resumed run directory and
its typed record) and hands it to :class:`vbench.run.session.RunSession`, which boots each variant
once, proves the intended drivers are bound and visits the units in rotated order (A B C D,
B C D A, ...), resuming only the guest under test. Each finished unit (variant x workload x
repetition) is stored at once as its own atomic part; a failed unit is recorded with its reason
and the run goes on. On Ctrl-C/SIGTERM all guests are destroyed, samples so far are kept and the
run is marked incomplete; ``--resume`` finishes the missing units later.

:class:`LabGuests` is the real guest factory (libvirt, SSH, verify.py); the session's unit tests
use fakes in its place.
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vbench import __version__
from vbench.run import adaptive, faults
from vbench.host import hosts, images, lab
from vbench.guest import kconfig, userimage, verify
from vbench.host import ssh as remote
from vbench.core.errors import ImageUnfit, UserError
from vbench.core.errors import BootError
from vbench.core.policy import HOST_VARIANT
from vbench.run.executors import Target, execute
from vbench.workloads.base import stored_names
from vbench.results.record import Environment, RunRecord, ScenarioInfo, Variant, WorkloadInfo
from vbench.scenario import budget
from vbench.scenario.schema import Scenario
from vbench.scenario.schema import Variant as VariantSpec
from vbench.run.session import Booted, RunSession, Say, Unit, fmt_time, headline_metric, now, plan
from vbench.results.rundir import RunDir, iter_sample_rows
from vbench.guest.domain import guest_class
from vbench.host.libvirtd import DOMAIN_PREFIX

__all__ = ["LabGuests", "Unit", "plan", "run_scenario", "summary_rows", "fmt_time"]


def summary_rows(run_path: Path, scn: Scenario) -> list[tuple]:
    vals: dict[tuple, list[float]] = {}
    units: dict[str, str] = {}
    for row in iter_sample_rows(run_path):
        # Network and ping samples carry the direction: workload "tcp-1" stores "tcp-1-h2g".
        w = next((w for w in scn.workloads if row["workload"] in stored_names(w.name)), None)
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
        variants[HOST_VARIANT] = Variant(device=HOST_VARIANT, model=HOST_VARIANT, paravirtual=False,
                                         baseline=True,
                                   profile=None)
    workloads = {}
    for w in scn.workloads:
        spec = getattr(w, w.tool).model_dump()
        if w.fio:
            rt, ramp = scn.fio_runtime(w)
            spec = {"options": scn.fio_options(w), "runtime": rt, "ramp_time": ramp}
        workloads[w.name] = WorkloadInfo(tool=w.tool, options=spec, method=w.kind.method)
    return RunRecord(run_id=run_id, status="running", started=now(), finished=None,
                     vbench_version=__version__,
                     scenario=ScenarioInfo(name=scn.name, file=scenario_file, text=text,
                                           description=scn.description,
                                           reference=scn.reference),
                     repetitions=reps, environment=env, variants=variants, workloads=workloads)


@dataclass
class LabGuests:
    """The real guest factory: libvirt domains from device profiles, verified over SSH."""

    scn: Scenario
    rd: RunDir
    lab: Any            # lab.Lab
    image: Any          # images.Image
    accel: Any          # lab.Accelerator
    say: Say
    key: Any = None     # this run's client key (paramiko PKey) and its public half
    pub: str = ""
    # variant -> Guest fields an A/B side changes (emulator, kernel, initrd; "lab" for another
    # libvirt URI), see vbench.run.ab; "by_attempt": a list of fields for the first, second, ... boot
    # attempt only (vbench.run.faults: a boot that hangs once)
    overrides: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.key is None:
            self.key, self.pub = remote.new_client_key()  # a fresh client key for this run only

    def boot(self, stack: contextlib.ExitStack, v: VariantSpec, index: int,
             rep: int | None, attempt: int = 0, cancel: threading.Event | None = None) -> Booted:
        prof = self.scn.profile(v)
        suffix = "" if rep is None else f"-r{rep}"
        # A retry is a fresh guest: its own name (so its own MACs, no stale lease), its own overlay.
        name = (f"{DOMAIN_PREFIX}{self.rd.run_id[-22:]}-{index}-{v.name}{suffix}"[:86]
                + (f"-a{attempt}" if attempt else ""))
        extra = dict(self.overrides.get(v.name, {}))
        by_attempt = extra.pop("by_attempt", [])
        if attempt < len(by_attempt):
            extra.update(by_attempt[attempt])
        lb = extra.pop("lab", self.lab)
        cls = guest_class(lb)
        g = cls(name, lb, self.image, prof, self.scn.guest, self.accel, self.key, self.pub,
                  tags={"run": self.rd.run_id, "variant": v.name}, progress=self.say,
                  cancel=cancel, **extra)
        console = f"console{suffix}" + (f".retry{attempt}" if attempt else "") + ".log"
        g.keep_console = self.rd.raw_path(v.name, console)
        try:
            stack.enter_context(g)
        except BootError as exc:
            exc.console_file = f"raw/{v.name}/{console}"  # type: ignore[attr-defined]
            raise
        check_guest(g, self.scn)
        checks, facts = verify.verify_guest(g, prof)
        proofs = verify.host_proofs(g, lb.host, prof)  # e.g. vhost-net in use, seen on the host
        verify.require_proofs(proofs, g.name)
        fio_v = g.ssh.run("fio --version", timeout=20, check=False).stdout.strip()
        return Booted(Target(v.name, g, facts, lab=lb), checks, fio_v, proofs)

    def host(self, stack: contextlib.ExitStack) -> Target:
        """The host baseline: the same fio jobs against the same kind of backing file on the host."""
        disk = self.scn.profile(self.scn.variants[0]).disk
        assert disk is not None
        host = self.lab.host  # where the guests run: this machine or the other host
        f = host.baseline_scratch(self.rd.run_id, disk.size_gib, disk.preallocate)
        stack.callback(host.remove_dir, f.parent)
        return Target(HOST_VARIANT, None, {}, host_scratch=f, lab=self.lab)


def check_guest(g, scn) -> None:
    """Before anything is measured on a freshly booted guest: the tools its workloads run are
    there, and (a user's image, whose kernel vbench could not read before booting it) the kernel
    has the options the scenario's devices need. Refuses with one line that stops the run."""
    need = userimage.required_tools(scn)
    own = getattr(g.image, "own_boot", False)
    script = userimage.tools_script(sorted(need)) + (kconfig.RUNNING_SCRIPT if own else "")
    if not script:
        return
    out = g.ssh.run(script, timeout=60, check=False).stdout
    missing = userimage.missing_tools(out)
    if missing:
        raise userimage.refuse_missing(str(g.image.name), missing, need)
    if own:
        release, values, _ = kconfig.parse_running(out)
        if values:  # no /boot/config-*: the drivers are still verified device by device
            lacking = kconfig.missing_for_scenario(scn, values)
            if lacking:
                desc = "; ".join(f"{v} needs {', '.join(o)}" for v, o in lacking.items())
                raise ImageUnfit(f"the guest kernel of {g.image.name} ({release}) lacks options "
                                 f"this scenario needs: {desc}")


def _image(scn: Scenario, say: Say):
    if scn.guest.image_file is not None:
        say(f"guest image: {scn.guest.image_file} (your own, booted by its own bootloader "
            f"with a cloud-init seed)")
        return userimage.open_image(scn.guest.image_file, scn.guest.firmware)
    name = "debian12" if scn.guest.image == "default" else scn.guest.image
    img = images.find(name)
    if img is None:
        say("guest image not built yet: building it now (cached for later runs)")
        img, _, secs = images.build(name, progress=say)
        say(f"image built in {secs:.0f} s")
    return img


def _open_run(resume: Path, acc_name: str) -> tuple[RunDir, RunRecord]:
    rd = RunDir.open(resume)
    rec = rd.read_record()
    if rec.environment.accelerator != acc_name:
        raise UserError(f"{resume} was measured under {rec.environment.accelerator}, "
                        f"this host would use {acc_name}: results must not be mixed")
    rec.status = "running"
    rec.resumed.append(now())
    return rd, rec


def _lab_image_accel(scn: Scenario, connect: str | None, accel_override: str | None, ab: bool,
                     say: Say):
    """The lab (a local one, a user's libvirt, or another host's), the guest image (uploaded to
    that host) and the accelerator, after refusing what this lab cannot run."""
    hosts.kind_for(connect).refuse_unsupported(scn, ab=ab)
    lb = lab.up(connect=connect, progress=say)
    img = _image(scn, say)
    if not getattr(img, "own_boot", False):
        kconfig.require_for_scenario(scn, img)  # a user's image: checked once it runs
    return (lb, lb.host.place_image(img, say),
            lb.host.accelerator(userimage.probe_kernel(img), override=accel_override))


def run_scenario(scn: Scenario, text: str, scenario_file: str, results_root: Path,
                 connect: str | None, accel_override: str | None, say: Say,
                 repetitions: int | None = None, resume: Path | None = None,
                 sides: tuple | None = None) -> Path:
    """Run (or resume) a scenario; returns the run directory.

    ``sides``: an A/B run (vbench.run.ab): ``scn`` is already expanded per side and these two
    :class:`vbench.run.ab.Side` say what each side's guests change.

    With ``repetitions: {min, max, target_ci}`` (and no ``repetitions`` override) rounds are
    added after ``min`` until every gated interval is narrow enough (vbench.run.adaptive).
    """
    rounds = (adaptive.Plan(repetitions, repetitions) if repetitions else
              adaptive.Plan(scn.min_repetitions, scn.max_repetitions, scn.target_ci))
    reps = rounds.min
    say(f"scenario {scn.name}: {len(scn.variants)} variants x {len(scn.workloads)} workloads x "
        + (f"{rounds.min} to {rounds.max} repetitions until every gated interval is within "
           f"±{(rounds.target_ci or 0) * 100:g} %" if rounds.adaptive else f"{reps} repetitions")
        + f" ({scn.order})")
    lb, img, acc = _lab_image_accel(scn, connect, accel_override, sides is not None, say)
    say(f"accelerator: {acc.name.upper()} ({acc.reason})")
    if resume is not None:
        rd, rec = _open_run(resume, acc.name)
        reps = rec.repetitions or reps
        rounds = adaptive.Plan(reps, reps)  # complete the rounds the run had planned
    else:
        env = Environment.model_validate(lb.host.facts())  # the host that measures
        env.accelerator, env.accelerator_reason = acc.name, acc.reason
        env.guest_image = str(getattr(img, "source", None) or getattr(img, "path", img.dir))
        env.guest_image_key = img.manifest.get("key")
        env.guest_kernel_boot = None if getattr(img, "own_boot", False) else img.kernel_boot
        env.vbench_version, env.python = __version__, platform.python_version()
        rd = RunDir.create(results_root, _new_run_id(scn))
        rec = _initial_record(rd.run_id, scn, scenario_file, text, env, reps)
    rd.write_record(rec)
    say(f"results: {rd.path}")
    guests = LabGuests(scn, rd, lb, img, acc, say)
    run_unit, groups = execute, None
    if sides is not None:
        from vbench.run import ab

        guests.overrides, run_unit, groups = ab.session_parts(scn, sides, lb, say)
        rec.ab = {s.name: s.to_dict() for s in sides}  # type: ignore[attr-defined]
        rd.write_record(rec)
    fault_hook = faults.install([v.name for v in scn.variants], guests.overrides)
    if rounds.adaptive:
        session: RunSession = adaptive.AdaptiveSession(scn, rd, rec, guests, run_unit, say, rounds,
                                                       groups=groups, before_unit=fault_hook)
    else:
        session = RunSession(scn, rd, rec, guests, run_unit, say, reps, before_unit=fault_hook)
    session.boot_width = budget.boot_width(rec.environment.cpus)
    session.run()
    return rd.path
