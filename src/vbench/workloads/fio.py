"""fio: the disk probe. Owns the fio command line and the parsing of fio's JSON output.

fio 3.x (``--output-format=json``) is run inside the guest against the disk under test. fio may
print warnings or its own error lines before the JSON document, and the caller may capture extra
lines after it; both are tolerated. Numbers come from the measured window only (fio already leaves
``ramp_time`` out of the JSON).

Metrics (per active direction; plain names when only reads or only writes were done, ``read_`` /
``write_`` prefixed names when both were, e.g. randrw):
``iops`` (IO/s), ``bw`` (MiB/s), ``clat_mean``, ``clat_p50``, ``clat_p99``, ``clat_p99.9`` (us),
plus ``guest_cpu_usr`` and ``guest_cpu_sys`` (%, average over jobs).

Several jobs are summed (iops, bw) or merged (mean latency weighted by completions). Percentiles
cannot be merged from per-job percentiles: without ``group_reporting=1`` the largest per-job value
is reported, an upper bound of the true merged percentile. Use ``group_reporting=1`` for exact ones.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from vbench.core import procs
from vbench.core.errors import ProbeError, RemoteCommandError
from vbench.core.metrics import KVM_EXIT_METRICS, Sample
from vbench.workloads.common import (exit_samples, finite_sample, nonnegative_number, one_line,
                                     section)
from vbench.devices.base import Strict
from vbench.workloads import fioopts
from vbench.workloads.base import InGuest, RunningUnit, WorkloadKind
from vbench.workloads.fioopts import OPTIONS, FioOptionError, _size_bytes, canonical, shown

OptionValue = str | int | bool

# Options fio_argv sets itself; letting a user option repeat them would silently change the run
# (or, for output/output_format, lose the JSON this module parses).
RESERVED_OPTIONS = frozenset(
    {"name", "filename", "output", "output_format", "time_based", "runtime", "ramp_time"}
)
TIMING_OPTIONS = frozenset({"time_based", "runtime", "ramp_time"})  # the spec's own fields
_DIRECTIONS = ("read", "write")
_PERCENTILES = (("clat_p50", "50.000000"), ("clat_p99", "99.000000"), ("clat_p99.9", "99.900000"))


# ---------------------------------------------------------------- command line


def fio_argv(
    name: str,
    filename: str,
    options: dict[str, OptionValue],
    runtime: int,
    ramp_time: int,
) -> list[str]:
    """The argv of one time-based fio job writing JSON to stdout.

    ``options`` become ``--key=value`` in the given order (True -> 1, False -> 0). Keys must be on
    the allow-list of :mod:`vbench.workloads.fioopts` (never one of :data:`RESERVED_OPTIONS`), values
    pass its checks; anything else is a one-line ProbeError.
    """
    _check_word("name", name)
    _check_word("filename", filename)
    _check_int("runtime", runtime, minimum=1)
    _check_int("ramp_time", ramp_time, minimum=0)
    argv = [
        "fio",
        "--output-format=json",
        f"--name={name}",
        f"--filename={filename}",
        "--time_based=1",
        f"--runtime={runtime}",
        f"--ramp_time={ramp_time}",
    ]
    for key, value in options.items():
        argv.append(f"--{_check_key(key)}={_option_text(key, value)}")
    # Every option after the fixed part is on the allow-list (fioopts): nothing else reaches fio.
    assert all(a.split("=", 1)[0][2:] in OPTIONS for a in argv[7:])
    return argv


def _check_word(what: str, value: str) -> None:
    if not isinstance(value, str) or not value or any(c in value for c in "\n\r\0"):
        raise ProbeError(f"fio {what} {value!r} is invalid: give a non-empty single-line string")


def _check_int(what: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProbeError(f"fio {what} {value!r} is invalid: give a whole number >= {minimum}")


def _check_key(key: str) -> str:
    if isinstance(key, str) and key in RESERVED_OPTIONS:
        raise ProbeError(
            f"fio option {key!r} is set by vbench itself: remove it from the workload options"
        )
    if not isinstance(key, str) or key not in OPTIONS:
        raise ProbeError(
            f"fio option name {shown(key)} is invalid: vbench supports only the fio options "
            "listed in the README ('Running scenarios you did not write')"
        )
    return key


def _option_text(key: str, value: OptionValue) -> str:
    try:
        return canonical(key, value)
    except FioOptionError as exc:
        raise ProbeError(str(exc)) from None


# ---------------------------------------------------------------- other outputs


def fio_version(text: str) -> str:
    """The version number in the output of ``fio --version`` (``fio-3.33`` -> ``3.33``)."""
    match = re.search(r"^\s*fio-(\d+(?:\.\d+)*)\b", text, re.MULTILINE)
    if not match:
        raise ProbeError(
            f"fio --version printed {one_line(text)!r}, not 'fio-X.Y': check fio is installed "
            "in the guest image"
        )
    return match.group(1)


def parse_fio_error(text: str) -> str:
    """fio's own message lines printed outside the JSON document, joined by ' | ' ('' if none).

    fio prints errors and warnings before its JSON (or instead of it when it could not start).
    """
    start = _json_start(text)
    head = text if start is None else text[:start]
    lines = [line.strip() for line in head.splitlines() if line.strip()]
    return one_line(" | ".join(lines))


# ---------------------------------------------------------------- JSON output


def fio_total_ios(text: str) -> int:
    """I/Os completed in the measured window: read + write ``total_ios`` summed over all jobs."""
    jobs = _jobs(_load(text), text)
    return sum(_int(_dir(job, d), "total_ios") for job in jobs for d in _DIRECTIONS)


def parse_fio_json(text: str, workload: str) -> list[Sample]:
    """Samples of one fio run (see the module docstring for the metrics)."""
    jobs = _jobs(_load(text), text)
    active = [d for d in _DIRECTIONS if any(_is_active(_dir(job, d)) for job in jobs)]
    if not active:
        raise ProbeError(
            f"fio completed no read or write I/O{_said(text)}: check the rw= option and the "
            "target device"
        )
    samples: list[Sample] = []
    for direction in active:
        prefix = f"{direction}_" if len(active) > 1 else ""
        parts = [_dir(job, direction) for job in jobs]
        for metric, value, unit in _direction_metrics(parts):
            samples.append(_sample(workload, prefix + metric, value, unit))
    usr = [_num(job, "usr_cpu") for job in jobs]
    sys_ = [_num(job, "sys_cpu") for job in jobs]
    samples.append(_sample(workload, "guest_cpu_usr", sum(usr) / len(usr), "%"))
    samples.append(_sample(workload, "guest_cpu_sys", sum(sys_) / len(sys_), "%"))
    return samples


def _direction_metrics(parts: list[dict]) -> list[tuple[str, float, str]]:
    """(metric, value, unit) of one direction, summed/merged over the jobs' sections."""
    out = [("iops", sum(_num(p, "iops") for p in parts), "IO/s")]
    out.append(("bw", sum(_bw_bytes(p) for p in parts) / 1048576.0, "MiB/s"))
    clats = [p["clat_ns"] for p in parts if isinstance(p.get("clat_ns"), dict)]
    weights = [_num(c, "N") for c in clats if "N" in c]
    if clats and len(weights) == len(clats) and sum(weights) > 0:
        mean_ns = sum(_num(c, "mean") * w for c, w in zip(clats, weights)) / sum(weights)
        out.append(("clat_mean", mean_ns / 1000.0, "us"))
    for metric, key in _PERCENTILES:
        values = [_percentile_ns(c, key) for c in clats]
        present = [v for v in values if v is not None]
        if present:
            out.append((metric, max(present) / 1000.0, "us"))
    return out


def _bw_bytes(part: dict) -> float:
    """Bandwidth in bytes/s: fio 3.x's exact ``bw_bytes``, else ``bw`` (KiB/s)."""
    if "bw_bytes" in part:
        return _num(part, "bw_bytes")
    return _num(part, "bw") * 1024.0


def _percentile_ns(clat: dict, key: str) -> float | None:
    table = clat.get("percentile")
    if not isinstance(table, dict) or key not in table:
        return None
    return _num(table, key)


def _is_active(part: dict) -> bool:
    return _num(part, "io_bytes") > 0 or _num(part, "total_ios") > 0


def _load(text: str) -> dict:
    """The JSON document in ``text``, skipping fio's message lines before it and junk after it."""
    if not isinstance(text, str):
        raise ProbeError("fio output is not text: pass the decoded stdout of fio")
    start = _json_start(text)
    if start is None:
        raise ProbeError(
            f"fio printed no JSON{_said(text)}: run it with --output-format=json and check the "
            "job options"
        )
    try:
        doc, _end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        raise ProbeError(
            f"fio's JSON output is truncated or malformed{_said(text)}: check that fio finished "
            "and that nothing else wrote to its stdout"
        ) from None
    if not isinstance(doc, dict):
        raise ProbeError("fio's JSON output is not an object: check the fio version (3.x needed)")
    return doc


def _json_start(text: str) -> int | None:
    """Offset of the JSON document: the first line starting with '{', else the first '{'."""
    match = re.search(r"^\{", text, re.MULTILINE)
    if match:
        return match.start()
    index = text.find("{")
    return index if index >= 0 else None


def _jobs(doc: dict, text: str) -> list[dict]:
    jobs = doc.get("jobs")
    if not isinstance(jobs, list) or not jobs or not all(isinstance(j, dict) for j in jobs):
        raise ProbeError(
            f"fio's JSON has no job results{_said(text)}: check the fio version (3.x needed) "
            "and the job options"
        )
    for job in jobs:
        error = job.get("error", 0)
        if error != 0:
            raise ProbeError(_job_error(job, error, text))
    return jobs


def _job_error(job: dict, error: object, text: str) -> str:
    name = job.get("jobname", "?")
    reason = ""
    if isinstance(error, int) and not isinstance(error, bool) and 0 < error < 4096:
        reason = f" ({os.strerror(error)})"
    return one_line(
        f"fio job {name!r} failed with error {error!r}{reason}{_said(text)}: check the filename "
        "(does the device exist in the guest?) and the job options"
    )


def _said(text: str) -> str:
    told = parse_fio_error(text) if isinstance(text, str) else ""
    return f"; fio said: {told}" if told else ""


def _dir(job: dict, direction: str) -> dict:
    return section(job, direction,
                   f"fio's JSON job has no {direction!r} section: check the fio version (3.x needed)")


def _num(obj: dict, key: str) -> float:
    field = f"fio's JSON field {key!r}".replace("{", "{{").replace("}", "}}")
    return nonnegative_number(
        obj.get(key), field + " is {shown}, not a number: check the fio version (3.x needed)",
        field + " is {value}: fio's output is corrupt, rerun")


def _int(obj: dict, key: str) -> int:
    value = _num(obj, key)
    if value != int(value):
        raise ProbeError(f"fio's JSON field {key!r} is {value!r}, not a whole number: rerun fio")
    return int(value)


def _sample(workload: str, metric: str, value: float, unit: str) -> Sample:
    return finite_sample(workload, metric, value, unit,
                         "fio gave a non-finite {metric}: fio's output is corrupt, rerun")


# ---------------------------------------------------------------- scenario spec and declaration

def check_fio_options(v: dict) -> dict:
    """fio options a user may add: only the allow-list of :mod:`vbench.workloads.fioopts`. Every
    option that is not allowed is named (in one line: the field's), not only the first."""
    fioopts.check_options(v, names_only=True)  # a mapping, and not too many to list
    bad = [(key, why) for key, value in v.items() if (why := _option_problem(key, value))]
    if bad:
        raise ValueError(_options_problem(bad))
    return v


def _option_problem(key: str, value: object) -> str | None:
    """Why the user may not set fio option ``key`` to ``value`` (None: allowed)."""
    if key in RESERVED_OPTIONS:
        hint = ("use the workload's runtime/ramp_time fields" if key in TIMING_OPTIONS
                else "vbench names the job, its file and its output")
        return f"fio option {key!r} is set by vbench and cannot be set here ({hint})"
    try:
        fioopts.canonical(key, value)
    except fioopts.FioOptionError as exc:
        return str(exc)
    return None


def _options_problem(bad: list[tuple[str, str]], full: int = 2) -> str:
    """One bounded line naming the options that are not allowed (``(name, reason)`` pairs): the
    first ``full`` with their reasons (each cut at 160 characters; the README's pointer once),
    the next five by name, then how many more."""
    hint = fioopts.SUPPORTED_HINT
    head = [one_line(why.removesuffix(hint), 160) for _name, why in bad[:full]]
    if any(why.endswith(hint) for _name, why in bad):
        head[-1] += hint
    rest = [shown(name, 20) for name, _why in bad[full:]]
    if rest:
        more = ", ".join(rest[:5]) + (f" and {len(rest) - 5} more" if len(rest) > 5 else "")
        head.append(f"also not allowed: {more}")
    return "; ".join(head)


class FioSpec(Strict):
    rw: Literal["read", "write", "randread", "randwrite", "rw", "randrw"]
    bs: str = Field("4k", pattern=r"^[0-9]+[kKmM]?$")
    iodepth: int = Field(1, ge=1, le=1024)
    numjobs: int = Field(1, ge=1, le=64)
    runtime: int | None = Field(None, ge=1, le=3600)
    ramp_time: int | None = Field(None, ge=0, le=600)
    options: dict[str, str | int | bool] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _option_names(cls, v: dict) -> dict:
        return check_fio_options(v)

    @model_validator(mode="after")
    def _bounded(self) -> "FioSpec":
        fioopts.check_options({"bs": self.bs})  # the pattern alone lets '99999999999m' through
        return self


class FioDefaults(Strict):
    runtime: int = Field(5, ge=1, le=3600)
    ramp_time: int = Field(2, ge=0, le=600)
    options: dict[str, str | int | bool] = Field(
        default_factory=lambda: dict[str, str | int | bool](ioengine="libaio", direct=1))

    @field_validator("options")
    @classmethod
    def _option_names(cls, v: dict) -> dict:
        return check_fio_options(v)


def runtime_of(spec: FioSpec, defaults: FioDefaults) -> tuple[int, int]:
    """(runtime, ramp_time) of a fio workload: its own, else the scenario's fio defaults."""
    return (spec.runtime or defaults.runtime,
            defaults.ramp_time if spec.ramp_time is None else spec.ramp_time)


FIO_SLACK_S = 1.0  # per fio unit beyond runtime + ramp_time (start, JSON, suspend): measured
FIO_TIMEOUT_SLACK_S = 20  # fio start-up and teardown, generous even under TCG
LAYOUT_TIMEOUT_S = 900


# ---------------------------------------------------------------- executor


def run_fio(scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
    """One fio job: on the host baseline's scratch file (sandboxed), else in the guest on its
    disk under test or a file in its shared folder under test, with QEMU's CPU per I/O."""
    runtime, ramp = scn.fio_runtime(w)
    opts = scn.fio_options(w)
    # fio ends on its own after ramp+runtime; past `limit` it is hung (or stopped): `timeout`
    # signals its whole process group, SIGKILL 5 s later even if stopped.
    limit = runtime + ramp + FIO_TIMEOUT_SLACK_S
    wrap = procs.killed_after(limit)
    bound = limit + 20
    if unit.scratch is not None:  # the host baseline: root on the host with a scenario's options
        res = unit.host().run_confined(fio_argv(w.name, unit.scratch, opts, runtime, ramp), wrap,
                                       timeout=bound)
        if not res.ok:
            raise RemoteCommandError(res)
        return parse_fio_json(res.stdout, w.name), res.stdout
    g = unit.guest("fio")
    disks = unit.facts.get("disks") or []
    # A disk under test, else a file in the shared folder under test (device fs).
    path = f"/dev/{disks[0]['dev']}" if disks else unit.facts.get("fio_file")
    if not path:
        raise ProbeError(f"no scratch disk and no shared folder was found in guest {g.name}")
    if not disks:
        _lay_out_once(g, unit.facts, path, opts)
    cmd = shlex.join(wrap + fio_argv(w.name, path, opts, runtime, ramp))
    with g.qemu_cpu(ramp, runtime) as cpu, g.kvm_exits(ramp, runtime) as exits:
        res = g.run(cmd, timeout=bound, check=False)
    if not res.ok:
        g.check_alive()
        if res.timed_out or res.exit_status in (124, 137):
            raise RemoteCommandError(res, f"fio did not finish within {limit} s in {g.name} "
                                          f"(hung or stopped); it was killed: {res.command}")
        raise RemoteCommandError(res)
    text = res.stdout
    samples = parse_fio_json(text, w.name)
    rate = cpu.rate()
    ios_per_s = fio_total_ios(text) / runtime
    if rate is not None and ios_per_s > 0:
        samples.append(Sample(w.name, "host_cpu_per_io", rate / ios_per_s * 1e6, "us"))
    samples += exit_samples(w.name, exits, ios_per_s, unit.facts)
    return samples, text


def _lay_out_once(g: InGuest, facts: dict, path: str, opts: dict) -> None:
    """Write a file target in full once per guest, unmeasured, before its first job.

    fio lays out a missing file before it starts its clock, in the job's own block size; on a
    slow shared folder (9p under TCG: ~30 s for 256 MiB in 4k writes) that eats the job's time
    bound and the job is killed as hung. The layout job is a *read* job: fio writes a file out
    in full only for reads (for a write job with ``create_only`` it left a 0-byte file on 9p,
    so the first measured read job laid it out again, inside its bound). The size fio left is
    checked: a short file is an error, never a silent layout inside the next measured job.
    """
    if facts.get("fio_file_ready") == path:
        return
    argv = [*procs.killed_after(LAYOUT_TIMEOUT_S), "fio", "--name=vbench-layout",
            f"--filename={path}", "--rw=read", "--bs=1m", "--create_only=1"]
    if "size" in opts:
        argv.append(f"--size={opts['size']}")
    cmd = f"{shlex.join(argv)} >/dev/null && stat -c size=%s {shlex.quote(path)}"
    res = g.run(cmd, timeout=LAYOUT_TIMEOUT_S + 20, check=False)
    if not res.ok:
        g.check_alive()
        raise RemoteCommandError(res, f"fio could not lay out {path} in {g.name}")
    m = re.search(r"^size=(\d+)$", res.stdout, re.M)
    have = int(m.group(1)) if m else 0
    want = _size_bytes(str(opts["size"])) if "size" in opts else None  # None: relative (50%)
    if have == 0 or (want is not None and have < want):
        raise ProbeError(f"fio laid out {path} in {g.name} with {have} bytes, "
                         f"not the {opts.get('size', 'non-zero size')} asked for")
    facts["fio_file_ready"] = path


class Fio(WorkloadKind):
    tool = "fio"
    spec = FioSpec
    metrics = ("iops", "bw", "clat_mean", "clat_p50", "clat_p99", "clat_p99.9", "guest_cpu_usr",
               "guest_cpu_sys", "host_cpu_per_io", *KVM_EXIT_METRICS)
    headline = "iops"
    guest_tools = ("fio",)
    remote = True

    def estimate_s(self, spec: Any, scn: Any) -> float:
        runtime, ramp = runtime_of(spec, scn.fio_defaults)
        return runtime + ramp + FIO_SLACK_S

    def headline_of(self, spec: Any) -> str:
        return "bw" if spec.rw in ("read", "write") else "iops"  # sequential: bandwidth tells

    def share_bytes(self, w: Any, scn: Any) -> int:
        """Its file in a shared folder (a guest without a scratch disk) ends at offset + size."""
        opts = scn.fio_options(w)
        return sum((_size_bytes(str(opts[k])) or 0) if k in opts else 0 for k in ("offset", "size"))

    run = staticmethod(run_fio)


WORKLOAD = Fio()
