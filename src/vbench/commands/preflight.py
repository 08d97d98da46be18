"""What vbench checks before anything boots: one function shared by ``validate``, ``plan``,
``run`` and ``fleet run``, so that ``vbench validate`` says exactly what ``vbench run`` would refuse.

A file is a scenario or a hosts file, told apart by its content (a hosts file is a list, or a
mapping with only ``hosts:``). Every problem is one line with the file and the field path; all of
them are listed, none hidden behind a count. Nothing boots and no lab is needed: the host figures
are this machine's free disk, available memory, CPUs and device nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vbench.core.errors import ScenarioError, UserError

MIN_REPETITIONS = 3  # a comparison (Welch's t, a 95 % interval) needs at least 3 per side


@dataclass
class Checked:
    """The outcome of checking one file."""

    path: Path
    kind: Literal["scenario", "hosts", "unknown"]
    problems: list[str] = field(default_factory=list)
    scenario: Any = None          # vbench.scenario.schema.Scenario when the file is a valid scenario
    hosts: list = field(default_factory=list)
    text: str = ""


def _read(path: Path, max_bytes: int) -> tuple[str | None, str | None]:
    """(text, None) or (None, the one-line problem)."""
    from vbench.core import untrusted

    try:
        return untrusted.read_text(path, max_bytes=max_bytes), None
    except untrusted.UntrustedInputError as exc:
        return None, f"{path}: {exc}"
    except FileNotFoundError:
        return None, f"{path}: no such file"
    except UnicodeDecodeError:
        return None, f"{path}: not UTF-8 text"
    except OSError as exc:
        return None, f"{path}: cannot read it: {exc.strerror or exc}"


def _parse(text: str, where: str) -> tuple[Any, str | None]:
    import yaml

    from vbench.core import untrusted

    try:
        return untrusted.load_yaml(text), None
    except untrusted.UntrustedInputError as exc:
        return None, f"{where}: {exc}"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, f"{where}: not valid YAML{pos}: {getattr(exc, 'problem', None) or 'invalid'}"


def is_hosts_document(doc: Any) -> bool:
    return isinstance(doc, list) or (isinstance(doc, dict) and set(doc) == {"hosts"})


def repetition_problems(scn: Any, where: str) -> list[str]:
    """A measurement needs at least 3 repetitions; ``smoke: true`` says the file is a code-path
    check (kept out of the model: stored runs with 1 or 2 repetitions still load)."""
    if scn.smoke or scn.min_repetitions >= MIN_REPETITIONS:
        return []
    field_ = "repetitions" if isinstance(scn.repetitions, int) else "repetitions.min"
    return [f"{where}: {field_}: {scn.min_repetitions} is too few for a comparison (vbench compare "
            f"needs at least {MIN_REPETITIONS}); for a code-path check, say `smoke: true`"]


def host_device_problems(scn: Any, where: str, exists=None) -> list[str]:
    from vbench import devices

    missing = devices.missing_on_host([(v.name, scn.profile(v)) for v in scn.variants], exists)
    return [f"{where}: this host lacks {m}" for m in missing]


def check_scenario_text(text: str, where: str, repetitions: int | None = None,
                        max_hours: float | None = None, host: Any = "this",
                        devices_too: bool = True,
                        base_dir: Path | None = None) -> tuple[Any, list[str]]:
    """(the scenario or None, every problem). ``host``: "this" (this machine's figures), None
    (not checked against a host) or a :class:`vbench.scenario.budget.HostFigures`; ``base_dir``: where
    fio job files named by the scenario are read."""
    from vbench.scenario import budget
    from vbench.scenario.schema import load_scenario_text

    try:
        scn = load_scenario_text(text, where=where, base_dir=base_dir)
    except ScenarioError as exc:
        return None, exc.problems
    reps = repetitions or scn.max_repetitions
    out = repetition_problems(scn, where) if repetitions is None else []
    figures = budget.host_figures() if host == "this" else host
    out += [f"{where}: {p.removeprefix('scenario ')}"
            for p in budget.problems(scn, reps, max_hours or budget.DEFAULT_MAX_HOURS, figures)]
    if devices_too and host is not None:
        out += host_device_problems(scn, where)
    return scn, out


def check_hosts_doc(doc: Any, where: str) -> tuple[list, list[str]]:
    from vbench.fleet.hosts import hosts_problems

    return hosts_problems(doc, where)


def check_file(path: Path, max_hours: float | None = None) -> Checked:
    """Check a scenario or hosts file, whichever it is, as ``run``/``fleet run`` would."""
    from vbench.core import untrusted
    from vbench.fleet.hosts import MAX_FILE_BYTES as HOSTS_MAX

    text, problem = _read(path, untrusted.MAX_FILE_BYTES)
    if problem:
        return Checked(path, "unknown", [problem])
    assert text is not None
    doc, problem = _parse(text, str(path))
    if problem:
        return Checked(path, "unknown", [problem])
    if is_hosts_document(doc):
        if len(text.encode()) > HOSTS_MAX:
            return Checked(path, "hosts", [f"{path}: is larger than {HOSTS_MAX // 1024} KiB"])
        hosts, problems = check_hosts_doc(doc, str(path))
        return Checked(path, "hosts", problems, hosts=hosts, text=text)
    scn, problems = check_scenario_text(text, str(path), max_hours=max_hours,
                                        base_dir=path.parent)
    return Checked(path, "scenario", problems, scenario=scn, text=text)


def require_scenario(path: str | Path, repetitions: int | None = None,
                     max_hours: float | None = None, host: Any = "this",
                     devices_too: bool = False) -> tuple[Any, str, Path]:
    """(scenario, its text, its path) of a file that passes every check, else ScenarioError listing all
    problems (what ``run`` and ``fleet run`` call before anything starts)."""
    from vbench.core import untrusted

    path = resolve_scenario(path)
    text, problem = _read(path, untrusted.MAX_FILE_BYTES)
    if problem:
        if problem.endswith("no such file"):
            problem += " (no such scenario file; see scenarios/ for the shipped ones)"
        raise ScenarioError(problem)
    assert text is not None
    scn, problems = check_scenario_text(text, str(path), repetitions, max_hours, host,
                                        devices_too=devices_too, base_dir=path.parent)
    if problems:
        raise ScenarioError.of(problems)
    return scn, self_contained(text, path), path


def self_contained(text: str, path: Path) -> str:
    """The scenario text a run records: with its fio job files expanded into workloads when it
    names any (a resumed run, a report or `vbench history` must not need the .fio files)."""
    import yaml

    from vbench.workloads.fiojob import uses_jobfile
    from vbench.scenario.schema import scenario_data

    if not uses_jobfile(scenario_data(text, str(path))):
        return text
    data = scenario_data(text, str(path), base_dir=path.parent)
    return (f"# {path.name} with its fio job files expanded into workloads by vbench\n"
            + yaml.safe_dump(data, sort_keys=False))


def resolve_scenario(arg: str | Path) -> Path:
    """A scenario argument as a path: the file if it exists, else a shipped scenario's name
    (``vbench run disk`` -> scenarios/disk.yaml, also from an installed package)."""
    from vbench.core.shipped import scenario_by_name

    path = Path(arg)
    if path.exists() or "/" in str(arg):
        return path
    return scenario_by_name(str(arg)) or path


def not_a_scenario(path: Path) -> UserError:
    return ScenarioError(f"{path}: is a hosts file, not a scenario")
