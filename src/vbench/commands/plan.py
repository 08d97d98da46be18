"""`vbench plan SCENARIO`: what a run would do, without doing it: the guests that would boot with
their devices, the units in measuring order, the time estimate, and what this host would refuse
and why (missing device nodes such as /dev/vhost-net, memory, disk, CPUs). Nothing boots."""

from __future__ import annotations

import argparse
from typing import Any

from vbench.core.errors import ExitStatus
from vbench.commands.output import say, table


def _spec_text(spec: Any, first: str | None = None) -> str:
    """A device or tool spec in one short line: its main field, then what differs from defaults."""
    data = spec.model_dump(exclude_defaults=True, mode="json")
    head = [str(getattr(spec, first))] if first else []
    rest = []
    for k, v in data.items():
        if k != first:
            rest += [f"{k2}={v2}" for k2, v2 in v.items()] if isinstance(v, dict) else [f"{k}={v}"]
    return " ".join(head + rest) or "defaults"


def workload_text(w: Any) -> str:
    return f"{w.tool} {_spec_text(getattr(w, w.tool))}"


def estimate_line(scn: Any, repetitions: int, host_cpus: int | None = None) -> str:
    """The estimate `plan` shows and `run` prints first (budget.estimate_seconds: the one home).
    ``host_cpus``: the measuring host's CPUs (how many guests boot side by side); None: unknown."""
    from vbench.scenario import budget
    from vbench.run.session import fmt_time

    variants = len(scn.variants) + (1 if scn.host_baseline else 0)
    units = variants * len(scn.workloads) * repetitions
    boots = len(scn.variants) * (repetitions if scn.fresh_boot else 1)
    waves = budget.boot_waves(scn, repetitions, host_cpus)
    side = f", {boots} boot(s) in {waves} wave(s)" if waves != boots else f", {boots} boot(s)"
    adaptive = (f"; adaptive: up to {scn.max_repetitions} repetitions (at least "
                f"{scn.min_repetitions})" if scn.target_ci is not None else "")
    return (f"estimate: about {fmt_time(budget.estimate_seconds(scn, repetitions, host_cpus))} "
            f"for {units} units{side} of about {budget.BOOT_ESTIMATE_S:.0f} s under TCG{adaptive}")


def local_cpus(args: argparse.Namespace) -> int | None:
    """This host's CPUs when it is the one that measures (no ``--connect`` elsewhere)."""
    from vbench.scenario import budget

    return None if getattr(args, "connect", None) else budget.host_figures().cpus


def cmd_plan(args: argparse.Namespace) -> ExitStatus:
    from vbench.scenario import budget
    from vbench.commands import preflight
    from vbench.core.errors import ScenarioError
    from vbench.run.session import plan

    path = preflight.resolve_scenario(args.scenario)
    checked = preflight.check_file(path, max_hours=args.max_hours)
    if checked.kind == "hosts":
        raise preflight.not_a_scenario(path)
    scn = checked.scenario
    if scn is None:
        raise ScenarioError.of(checked.problems)
    reps = args.repetitions or scn.max_repetitions
    say(f"scenario {scn.name} ({path}): device {scn.device}, {len(scn.variants)} variant(s) x "
        f"{len(scn.workloads)} workload(s) x {reps} repetition(s), {scn.order}"
        + (", plus the host baseline" if scn.host_baseline else ""))
    g = scn.guest
    image = g.image_file or f"image {g.image}"
    say(f"guests: {image}, {g.vcpus} vCPU(s), {g.memory_mib} MiB, machine {g.machine}, "
        + ("a fresh boot per repetition" if scn.fresh_boot else "one boot per variant, all up "
           "at once (suspended between units)"))
    say("")
    rows = []
    for v in scn.variants:
        prof = scn.profile(v)
        for i, (dev, spec) in enumerate(prof.present()):
            mark = "*" if dev.kind == scn.device else ""
            rows.append((v.name if i == 0 else "", dev.kind + mark,
                         _spec_text(spec, dev.model_field)))
    say("what boots (* the device under test):")
    say(table(rows, ("variant", "device", "model and settings")))
    say("")
    units = plan(scn, reps)
    tools = {w.name: w for w in scn.workloads}
    say(f"units in measuring order ({len(units)}):")
    say(table([(n + 1, u.repetition + 1, u.variant, u.workload, workload_text(tools[u.workload]),
                 f"{budget.unit_seconds(scn, scn.workloads.index(tools[u.workload])):.0f}s")
               for n, u in enumerate(units)],
              ("#", "rep", "variant", "workload", "tool and settings", "est")))
    say("")
    say(estimate_line(scn, reps, local_cpus(args)))
    host = budget.host_figures()
    say(f"this host: {host.cpus} CPU(s), {host.mem_available_mib:.0f} MiB available, "
        f"{host.free_disk_gib:.1f} GiB free in {host.where}")
    if checked.problems:
        say("this host would refuse it:")
        for p in checked.problems:
            say(f"  - {p.removeprefix(str(path) + ': ')}")
        return ExitStatus.SCENARIO_INVALID
    say("this host would run it (`vbench validate` passes)")
    return ExitStatus.SUCCESS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser(
        "plan", help="what a run would boot and measure, in order, its time estimate and what "
                     "this host would refuse; nothing boots",
        description="Show the guests a run of SCENARIO would boot with their devices, the units "
                    "in measuring order, the time estimate, and what this host would refuse and "
                    "why (missing /dev/vhost-net, memory, disk, CPUs). Exit 0 when this host "
                    "would run it, 3 otherwise. No lab is needed.")
    sp.add_argument("scenario", metavar="SCENARIO",
                    help="scenario YAML file, or a shipped scenario's name (e.g. disk)")
    sp.add_argument("--repetitions", type=int, help="plan with this many repetitions")
    sp.add_argument("--max-hours", type=float, default=24.0,
                    help="refuse scenarios whose estimated run time is longer (default: 24)")
    sp.set_defaults(func=cmd_plan)
