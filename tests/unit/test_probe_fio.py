"""fio probe: command line and parsing of real fio 3.33 JSON (tests/data).

Expected values were read by hand from the JSON files:
- fio-randread-4k-qd32-sata-tcg.json, fio-seqwrite-1m-sata-tcg.json: Debian 12 guest, SATA, TCG.
- fio-randrw-4k-2jobs-host-file.json: fio 3.33 on the dev host against a file in /tmp, built with
  fio_argv (rw=randrw, numjobs=2, no group_reporting): two jobs, both directions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vbench.core.errors import ProbeError
from vbench.core.metrics import METRICS
from vbench.workloads.fio import (
    fio_argv,
    fio_total_ios,
    fio_version,
    parse_fio_error,
    parse_fio_json,
)

DATA = Path(__file__).resolve().parents[1] / "data"
RANDREAD = (DATA / "fio-randread-4k-qd32-sata-tcg.json").read_text()
SEQWRITE = (DATA / "fio-seqwrite-1m-sata-tcg.json").read_text()
RANDRW = (DATA / "fio-randrw-4k-2jobs-host-file.json").read_text()
ERROR = (DATA / "fio-error-nonexistent-device.txt").read_text()


def by_metric(samples):
    out = {s.metric: s for s in samples}
    assert len(out) == len(samples), "metric names must be unique"
    return out


# ---------------------------------------------------------------- fio_argv


def test_argv_fixed_part_then_options_in_order():
    argv = fio_argv(
        "randread-4k-qd32",
        "/dev/vdb",
        {"rw": "randread", "bs": "4k", "iodepth": 32, "direct": True, "norandommap": False},
        runtime=15,
        ramp_time=2,
    )
    assert argv == [
        "fio",
        "--output-format=json",
        "--name=randread-4k-qd32",
        "--filename=/dev/vdb",
        "--time_based=1",
        "--runtime=15",
        "--ramp_time=2",
        "--rw=randread",
        "--bs=4k",
        "--iodepth=32",
        "--direct=1",
        "--norandommap=0",
    ]


def test_argv_values_are_rebuilt_from_the_checked_value():
    argv = fio_argv("j", "/dev/sda", {"cpus_allowed": "0,2-3", "size": 4096, "direct": "1"}, 1, 0)
    assert argv[-3:] == ["--cpus_allowed=0,2-3", "--size=4096", "--direct=1"]


@pytest.mark.parametrize(
    "key", ["name", "filename", "output", "output_format", "runtime", "ramp_time", "time_based"]
)
def test_argv_rejects_reserved_option(key):
    with pytest.raises(ProbeError, match="set by vbench itself"):
        fio_argv("j", "/dev/sda", {key: "x"}, 10, 0)


@pytest.mark.parametrize("key", ["output-format", "Rw", "bs size", "", "rw=1", "--rw"])
def test_argv_rejects_bad_option_key(key):
    with pytest.raises(ProbeError, match="option name"):
        fio_argv("j", "/dev/sda", {key: "x"}, 10, 0)


@pytest.mark.parametrize("value", ["", "a\nb", 1.5, None, ["x"]])
def test_argv_rejects_bad_option_value(value):
    with pytest.raises(ProbeError, match="invalid"):
        fio_argv("j", "/dev/sda", {"bs": value}, 10, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"runtime": 0},
        {"runtime": True},
        {"ramp_time": -1},
        {"name": ""},
        {"filename": "/dev/sda\n"},
    ],
)
def test_argv_rejects_bad_fixed_arguments(kwargs):
    args = {"name": "j", "filename": "/dev/sda", "options": {}, "runtime": 10, "ramp_time": 0}
    with pytest.raises(ProbeError):
        fio_argv(**(args | kwargs))


# ---------------------------------------------------------------- parse_fio_json


def test_randread_single_direction_plain_names():
    got = by_metric(parse_fio_json(RANDREAD, "randread-4k-qd32"))
    assert set(got) == {
        "iops", "bw", "clat_mean", "clat_p50", "clat_p99", "clat_p99.9",
        "guest_cpu_usr", "guest_cpu_sys",
    }
    assert all(s.workload == "randread-4k-qd32" for s in got.values())
    assert got["iops"].value == pytest.approx(4306.173457)
    # bw_bytes 17654466 B/s (fio's bw field: 17240 KiB/s)
    assert got["bw"].value == pytest.approx(17654466 / 1048576)
    assert got["bw"].value == pytest.approx(17240 / 1024, rel=1e-4)
    assert got["clat_mean"].value == pytest.approx(7226.071724898)
    assert got["clat_p50"].value == pytest.approx(7045.120)
    assert got["clat_p99"].value == pytest.approx(13959.168)
    assert got["clat_p99.9"].value == pytest.approx(20316.160)
    assert got["guest_cpu_usr"].value == pytest.approx(7.636545)
    assert got["guest_cpu_sys"].value == pytest.approx(53.305837)


def test_units_are_those_of_the_metric_table():
    for sample in parse_fio_json(RANDREAD, "w") + parse_fio_json(SEQWRITE, "w"):
        assert sample.unit == METRICS[sample.metric].unit


def test_seqwrite_write_direction():
    got = by_metric(parse_fio_json(SEQWRITE, "seqwrite-1m"))
    assert "read_iops" not in got and "write_iops" not in got
    assert got["iops"].value == pytest.approx(897.017164)
    assert got["bw"].value == pytest.approx(940590669 / 1048576)
    assert got["clat_mean"].value == pytest.approx(3419.820022292)
    assert got["clat_p50"].value == pytest.approx(3293.184)
    assert got["clat_p99"].value == pytest.approx(7634.944)
    assert got["clat_p99.9"].value == pytest.approx(10944.512)
    assert got["guest_cpu_usr"].value == pytest.approx(17.463756)
    assert got["guest_cpu_sys"].value == pytest.approx(78.870188)


def test_randrw_two_jobs_prefixed_summed_and_merged():
    got = by_metric(parse_fio_json(RANDRW, "randrw"))
    assert "iops" not in got
    assert got["read_iops"].unit == "IO/s" and got["write_clat_p99"].unit == "us"
    assert got["read_iops"].value == pytest.approx(23083.972009 + 23060.313229)
    assert got["write_iops"].value == pytest.approx(9870.376541 + 9891.702766)
    assert got["read_bw"].value == pytest.approx((94551949 + 94455042) / 1048576)
    assert got["write_bw"].value == pytest.approx((40429062 + 40516414) / 1048576)
    # mean weighted by completions (clat_ns.N), ns -> us
    read_mean = (36730.192999 * 69275 + 36805.270822 * 69204) / (69275 + 69204) / 1000
    assert got["read_clat_mean"].value == pytest.approx(read_mean)
    # percentiles of several jobs: the largest per-job value (an upper bound)
    assert got["read_clat_p50"].value == pytest.approx(34.560)
    assert got["read_clat_p99"].value == pytest.approx(111.104)
    assert got["read_clat_p99.9"].value == pytest.approx(456.704)
    assert got["write_clat_p50"].value == pytest.approx(2.352)
    assert got["write_clat_p99"].value == pytest.approx(15.168)
    assert got["write_clat_p99.9"].value == pytest.approx(63.232)
    # CPU: average over jobs
    assert got["guest_cpu_usr"].value == pytest.approx((1.733333 + 1.8) / 2)
    assert got["guest_cpu_sys"].value == pytest.approx((25.066667 + 24.633333) / 2)


def test_total_ios_of_measured_window():
    assert fio_total_ios(RANDREAD) == 34458
    assert fio_total_ios(SEQWRITE) == 5383
    assert fio_total_ios(RANDRW) == 69275 + 29621 + 69204 + 29685


def test_warning_lines_before_and_junk_after_json_are_tolerated():
    text = "fio: this platform does not support process shared mutexes\n" + RANDREAD + "exit=0\n"
    assert parse_fio_json(text, "w") == parse_fio_json(RANDREAD, "w")
    assert fio_total_ios(text) == 34458


def test_missing_percentile_is_skipped_not_a_crash():
    doc = json.loads(RANDREAD)
    del doc["jobs"][0]["read"]["clat_ns"]["percentile"]["99.900000"]
    got = by_metric(parse_fio_json(json.dumps(doc), "w"))
    assert "clat_p99.9" not in got
    assert got["clat_p99"].value == pytest.approx(13959.168)


def test_no_percentile_table_at_all():
    doc = json.loads(SEQWRITE)
    del doc["jobs"][0]["write"]["clat_ns"]["percentile"]
    got = by_metric(parse_fio_json(json.dumps(doc), "w"))
    assert {"clat_p50", "clat_p99", "clat_p99.9"}.isdisjoint(got)
    assert got["clat_mean"].value == pytest.approx(3419.820022292)


# ---------------------------------------------------------------- errors


def test_error_output_raises_with_fios_own_error_line():
    with pytest.raises(ProbeError) as info:
        parse_fio_json(ERROR, "w")
    message = str(info.value)
    assert "\n" not in message
    assert "error 22" in message and "'bad'" in message
    assert "fio: pid=0, err=22/file:filesetup.c:1155, func=total_file_size" in message
    assert "error=Invalid argument" in message
    assert "check the filename" in message


def test_total_ios_on_error_output_raises_too():
    with pytest.raises(ProbeError, match="error 22"):
        fio_total_ios(ERROR)


def test_parse_fio_error_returns_lines_before_the_json():
    assert parse_fio_error(ERROR) == (
        "bad: you need to specify size= | "
        "fio: pid=0, err=22/file:filesetup.c:1155, func=total_file_size, error=Invalid argument"
    )
    assert parse_fio_error(RANDREAD) == ""


def test_no_json_at_all_reports_what_fio_said():
    text = "fio: failed parsing rw=randwhat\nfio: job global dropped\n"
    with pytest.raises(ProbeError, match="no JSON; fio said: fio: failed parsing rw=randwhat"):
        parse_fio_json(text, "w")
    assert parse_fio_error(text) == "fio: failed parsing rw=randwhat | fio: job global dropped"


def test_truncated_json_raises():
    with pytest.raises(ProbeError, match="truncated or malformed"):
        parse_fio_json(RANDREAD[: len(RANDREAD) // 2], "w")


def test_job_without_any_io_raises():
    doc = json.loads(SEQWRITE)
    for key in ("io_bytes", "total_ios"):
        doc["jobs"][0]["write"][key] = 0
    with pytest.raises(ProbeError, match="no read or write I/O"):
        parse_fio_json(json.dumps(doc), "w")


def test_non_numeric_field_raises_probe_error():
    doc = json.loads(RANDREAD)
    doc["jobs"][0]["read"]["iops"] = "fast"
    with pytest.raises(ProbeError, match="'iops'"):
        parse_fio_json(json.dumps(doc), "w")


def test_empty_jobs_raises():
    with pytest.raises(ProbeError, match="no job results"):
        parse_fio_json('{"fio version": "fio-3.33", "jobs": []}', "w")


# ---------------------------------------------------------------- fio_version


def test_version_from_captured_guest_versions():
    assert fio_version((DATA / "guest-versions.txt").read_text()) == "3.33"


def test_version_plain_and_garbage():
    assert fio_version("fio-3.36\n") == "3.36"
    with pytest.raises(ProbeError, match="fio --version printed"):
        fio_version("sh: 1: fio: not found\n")
