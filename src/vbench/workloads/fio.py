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

from vbench.core.errors import ProbeError
from vbench.core.metrics import Sample
from vbench.workloads.common import finite_sample, nonnegative_number, one_line, section
from vbench.workloads.fioopts import OPTIONS, FioOptionError, canonical, shown

OptionValue = str | int | bool

# Options fio_argv sets itself; letting a user option repeat them would silently change the run
# (or, for output/output_format, lose the JSON this module parses).
RESERVED_OPTIONS = frozenset(
    {"name", "filename", "output", "output_format", "time_based", "runtime", "ramp_time"}
)
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

