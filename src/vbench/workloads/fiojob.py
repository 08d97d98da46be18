"""fio job files in a scenario: ``fio: {jobfile: NAME.fio}`` in a workload turns each job section
of the file (next to the scenario) into a workload of its own, with the ``[global]`` options
under its own.

The file is untrusted input like the scenario: a regular file of at most :data:`MAX_BYTES`, a bare
file name next to the scenario (no ``/``, no ``..``), every option through the allow-list of
:mod:`vbench.workloads.fioopts` (sizes bounded there). Refused: ``include`` (another file),
``filename``/``directory`` (vbench sets the target: the disk under test), ``$VARIABLES``, output
options and anything off the allow-list. Accepted and dropped, because vbench already does it:
``stonewall``/``new_group``/``wait_for_previous`` (each job runs alone, one after another),
``time_based`` (always), ``name``/``description`` (the section name names the workload).
``runtime``/``ramp_time`` become the workload's fields; ``rw``, ``bs``, ``iodepth`` and
``numjobs`` too when simple; everything else goes to the workload's checked fio ``options``.

Workload names are ``<workload name>-<job section>``. Every problem is one line,
``FILE:LINE: ...``, under the workload's field path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vbench.workloads.fioopts import FioOptionError, canonical
from vbench.core.untrusted import UntrustedInputError, read_text, shown

MAX_BYTES = 64 * 1024
MAX_JOBS = 32
MAX_LINES = 2000
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.fio$")
SECTION = re.compile(r"^\[([^\]]{1,64})\]$")
DROPPED = {"stonewall", "new_group", "wait_for_previous", "time_based", "name", "description"}
REFUSED = {
    "include": "includes another file; put its options in this one",
    "filename": "vbench sets the target (the disk under test); remove it",
    "directory": "vbench sets the target (the disk under test); remove it",
    "output": "vbench reads fio's JSON output itself; remove it",
    "output-format": "vbench reads fio's JSON output itself; remove it",
    "output_format": "vbench reads fio's JSON output itself; remove it",
}
_TIME = re.compile(r"^([0-9]{1,5})(s|m)?$")
_SIMPLE = {"rw": re.compile(r"^(read|write|randread|randwrite|rw|randrw)$"),
           "bs": re.compile(r"^[0-9]+[kKmM]?$"), "iodepth": re.compile(r"^[0-9]{1,4}$"),
           "numjobs": re.compile(r"^[0-9]{1,2}$")}


class JobFileError(ValueError):
    """Problems of one job file, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _seconds(value: str) -> int | None:
    m = _TIME.match(value)
    if not m:
        return None
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def parse(text: str, where: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str]]],
                                         list[str]]:
    """(global options, [(job section, its own options)], problems ``where:LINE: ...``) of a job
    file's text."""
    problems: list[str] = []
    glob: dict[str, str] = {}
    jobs: list[tuple[str, dict[str, str]]] = []
    current: dict[str, str] | None = None
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        return {}, [], [f"{where}: {len(lines)} lines; at most {MAX_LINES}"]
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        at = f"{where}:{n}"
        m = SECTION.match(line)
        if m:
            name = m.group(1).strip()
            if name == "global":
                current = glob
            else:
                current = {}
                jobs.append((name, current))
            continue
        if line.startswith("include ") or line == "include":
            problems.append(f"{at}: include {REFUSED['include']}")
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip() if sep else "1"
        if current is None:
            problems.append(f"{at}: {shown(key)} is outside a [section]")
            continue
        if "$" in value or "$" in key:
            problems.append(f"{at}: {key}: fio variables ($...) are not expanded here; write the "
                            f"value")
            continue
        if key in REFUSED:
            problems.append(f"{at}: {key}: {REFUSED[key]}")
            continue
        if key in current:
            problems.append(f"{at}: {key} is given twice in this section")
            continue
        current[key] = value
    if not jobs:
        problems.append(f"{where}: no job section (only [global]); add one, e.g. [randread]")
    if len(jobs) > MAX_JOBS:
        problems.append(f"{where}: {len(jobs)} jobs; at most {MAX_JOBS}")
        jobs = []
    return glob, jobs, problems


def job_spec(options: dict[str, str], at: str) -> tuple[dict[str, Any], list[str]]:
    """A FioSpec mapping from a job's options (global under its own); (spec, problems)."""
    spec: dict[str, Any] = {"rw": "read"}  # fio's default
    rest: dict[str, str] = {}
    problems: list[str] = []
    for key, value in options.items():
        if key in DROPPED:
            continue
        if key in ("runtime", "ramp_time"):
            secs = _seconds(value)
            if secs is None:
                problems.append(f"{at}: {key}={shown(value)}: give seconds, e.g. 30 or 30s")
            else:
                spec[key] = secs
            continue
        if key in _SIMPLE and _SIMPLE[key].match(value):
            spec[key] = int(value) if key in ("iodepth", "numjobs") else value
            continue
        try:
            canonical(key, value)
        except FioOptionError as exc:
            problems.append(f"{at}: {exc}")
            continue
        rest[key] = value
    if rest:
        spec["options"] = rest
    return spec, problems


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")


def expand(name: str, jobfile: Any, base_dir: Path, where: str) -> list[dict]:
    """The workloads of ``{name, fio: {jobfile}}``; JobFileError listing every problem."""
    if not isinstance(jobfile, str) or not FILE_NAME.match(jobfile):
        raise JobFileError([f"{where}: {shown(jobfile)} is not a job file name next to the "
                            f"scenario (NAME.fio: letters, digits, '_', '.', '-')"])
    path = base_dir / jobfile
    shown_path = f"{where}: {jobfile}"
    if path.is_symlink():
        raise JobFileError([f"{shown_path}: is a symbolic link; give the file itself"])
    try:
        text = read_text(path, max_bytes=MAX_BYTES)
    except FileNotFoundError:
        raise JobFileError([f"{shown_path}: no such file next to the scenario ({base_dir})"]) from None
    except (UntrustedInputError, UnicodeDecodeError) as exc:
        reason = str(exc) if isinstance(exc, UntrustedInputError) else "not UTF-8 text"
        raise JobFileError([f"{shown_path}: {reason}"]) from None
    except OSError as exc:
        raise JobFileError([f"{shown_path}: cannot read it: {exc.strerror or exc}"]) from None
    glob, jobs, problems = parse(text, shown_path)
    out = []
    for section, own in jobs:
        spec, found = job_spec({**glob, **own}, f"{shown_path} [{section}]")
        problems += found
        wname = f"{name}-{_safe_name(section)}"[:48]
        out.append({"name": wname, "fio": spec})
    if problems:
        raise JobFileError(problems)
    return out


def refuse_unexpanded(cls: Any, v: Any) -> Any:
    """Workload.fio's before-validator: a jobfile left in a scenario loaded without its file."""
    if isinstance(v, dict) and "jobfile" in v:
        raise ValueError("jobfile: a fio job file is read next to a scenario file; this scenario "
                         "has no file to read it beside")
    return v


def schema_extra(schema: dict) -> None:
    """``fio: {jobfile: NAME.fio}`` in the Workload's JSON schema."""
    schema["properties"]["fio"]["anyOf"].insert(1, {
        "type": "object", "additionalProperties": False, "required": ["jobfile"],
        "properties": {"jobfile": {
            "type": "string", "pattern": FILE_NAME.pattern,
            "description": "a fio job file next to the scenario: each job section becomes a "
                           "workload (<name>-<section>) with the [global] options"}}})


def expanded(data: Any, base_dir: Path, where: str) -> Any:
    """The scenario mapping with its job files expanded; ScenarioError listing every problem."""
    from vbench.core.errors import ScenarioError

    data, problems = expand_scenario(data, base_dir, where)
    if problems:
        raise ScenarioError.of(problems)
    return data


def uses_jobfile(data: Any) -> bool:
    workloads = data.get("workloads") if isinstance(data, dict) else None
    return isinstance(workloads, list) and any(
        isinstance(w, dict) and isinstance(w.get("fio"), dict) and "jobfile" in w["fio"]
        for w in workloads)


def expand_scenario(data: Any, base_dir: Path, where: str) -> tuple[Any, list[str]]:
    """The scenario mapping with every jobfile workload replaced by its jobs; (data, problems)."""
    if not uses_jobfile(data):
        return data, []
    problems: list[str] = []
    workloads: list = []
    for i, w in enumerate(data["workloads"]):
        fio = w.get("fio") if isinstance(w, dict) else None
        if not (isinstance(fio, dict) and "jobfile" in fio):
            workloads.append(w)
            continue
        at = f"{where}: workloads[{i}].fio.jobfile"
        extra = sorted(set(fio) - {"jobfile"})
        if extra:
            problems.append(f"{at}: with a job file, set {', '.join(extra)} in the file")
            continue
        try:
            workloads += expand(str(w.get("name", f"w{i}")), fio["jobfile"], base_dir, at)
        except JobFileError as exc:
            problems += exc.problems
    return {**data, "workloads": workloads}, problems
