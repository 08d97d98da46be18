"""Issue 10, finding 1: fio options from a scenario must never run code, open sockets or touch
files on the host. Every attack is refused at scenario load (one line, field path, exit 3) and
again by fio_argv; a property test feeds fio's own option names with random values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbench.core.errors import ProbeError, ScenarioError
from vbench.workloads import fioopts
from vbench.workloads.fio import RESERVED_OPTIONS, fio_argv
from vbench.scenario.schema import load_scenario_text

DATA = Path(__file__).resolve().parents[1] / "data"

SCN = """name: hostile
device: disk
host_baseline: true
variants:
  - {name: a, disk: {bus: virtio}}
workloads:
  - name: w
    fio: {rw: randread, options: OPTS}
"""

ATTACKS = {
    "exec_prerun": {"exec_prerun": "/tmp/x.sh"},
    "exec_postrun": {"exec_postrun": "/tmp/x.sh"},
    "ioengine-exec": {"ioengine": "exec", "program": "/bin/sh"},
    "ioengine-external": {"ioengine": "external:/tmp/evil.so"},
    "server-daemonize": {"server": "0.0.0.0", "daemonize": "/tmp/pid"},
    "client": {"client": "203.0.113.9"},
    "opendir-unlink": {"opendir": "/etc", "unlink": 1},
    "write_iolog": {"write_iolog": "/etc/passwd"},
    "directory": {"directory": "/etc"},
    "ioscheduler": {"ioscheduler": "none"},
    "cgroup": {"cgroup": "x"},
    "trigger": {"trigger": "reboot"},
    "trigger-file": {"trigger-file": "/tmp/t"},
    "prefix-runtim": {"runtim": 100000},
    "prefix-ramp_tim": {"ramp_tim": 100000},
    "prefix-time_base": {"time_base": 0},
    "prefix-nam": {"nam": "x"},
    "alias-timeout": {"timeout": 100000},
    "ioengine-sg": {"ioengine": "sg"},
    "ioengine-net": {"ioengine": "net"},
    "size-expression": {"size": "$mb_memory"},
    "size-huge": {"size": "999999999999999t"},
    "bs-huge": {"bs": "4096m"},
    "numjobs-huge": {"numjobs": 100000},
    "iodepth-huge": {"iodepth": 10**9},
    "rate-negative": {"rate_iops": -1},
    "bool-text": {"direct": "yes; reboot"},
    "cpus-garbage": {"cpus_allowed": "0,1;reboot"},
    "aux-path": {"aux-path": "/etc"},
    "output": {"output": "/etc/passwd"},
}


def _yaml_map(opts: dict) -> str:
    import json

    return json.dumps(opts)  # JSON is YAML flow syntax


@pytest.mark.parametrize("opts", list(ATTACKS.values()), ids=list(ATTACKS))
def test_attack_refused_at_load_with_field_path(opts):
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(SCN.replace("OPTS", _yaml_map(opts)))
    msg = str(exc.value)
    assert exc.value.exit_status == 3
    assert "\n" not in msg and len(msg) < 400
    assert "workloads[0].fio" in msg


@pytest.mark.parametrize("opts", list(ATTACKS.values()), ids=list(ATTACKS))
def test_attack_refused_by_fio_argv(opts):
    with pytest.raises(ProbeError) as exc:
        fio_argv("w", "/var/lib/vbench/guests/x/scratch.raw", opts, 5, 1)
    assert "\n" not in str(exc.value)


def test_every_bad_option_is_named_not_only_the_first():
    opts = {"filename": "/etc/passwd", "exec_prerun": "x", "iodepth_batch": 9, "runtime": 5,
            "iodepth": 4}
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(SCN.replace("OPTS", _yaml_map(opts)))
    msg = str(exc.value)
    assert "\n" not in msg
    for key in ("'filename'", "'exec_prerun'", "'iodepth_batch'", "'runtime'"):
        assert key in msg
    assert "iodepth'" not in msg.replace("iodepth_batch'", "")  # an allowed option is not named
    assert msg.count("README") == 1  # the pointer to the supported list once
    # the first two with their reasons (a reserved option's hint fits it), the rest by name
    assert "'filename' is set by vbench and cannot be set here (vbench names the job" in msg
    assert msg.endswith("also not allowed: 'iodepth_batch', 'runtime'")
    with pytest.raises(ScenarioError, match="use the workload's runtime/ramp_time fields"):
        load_scenario_text(SCN.replace("OPTS", _yaml_map({"runtime": 5})))


def test_attack_in_fio_defaults_refused_too():
    text = SCN.replace("OPTS", "{}") + 'fio_defaults: {options: {exec_prerun: "/tmp/x"}}\n'
    with pytest.raises(ScenarioError, match=r"fio_defaults\.options"):
        load_scenario_text(text)


def test_bs_field_is_bounded():
    with pytest.raises(ScenarioError, match="workloads"):
        load_scenario_text(SCN.replace("rw: randread,", "rw: randread, bs: 99999999999m,")
                           .replace("OPTS", "{}"))


@pytest.mark.parametrize("engine", fioopts.IOENGINES)
def test_supported_engines_accepted(engine):
    scn = load_scenario_text(SCN.replace("OPTS", _yaml_map({"ioengine": engine, "direct": 1})))
    argv = fio_argv("w", "/x", scn.fio_options(scn.workloads[0]), 5, 1)
    assert f"--ioengine={engine}" in argv


def test_long_hostile_value_is_cut_in_the_message():
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(SCN.replace("OPTS", _yaml_map({"size": "A" * 100000})))
    assert len(str(exc.value)) < 400


# ---- property test: fio's own option names, random values ------------------------------------

def _fio_names() -> list[str]:
    """Every option name fio 3.33 knows: job options (--cmdhelp=all) and command-line options
    (--help), plus aliases and unique prefixes fio also accepts."""
    names = set()
    for line in (DATA / "fio-3.33-cmdhelp-all.txt").read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_]+)\s*:", line)
        if m:
            names.add(m.group(1))
    for line in (DATA / "fio-3.33-help.txt").read_text().splitlines():
        m = re.match(r"^\s*--([a-z][a-z0-9-]*)", line)
        if m:
            names.add(m.group(1))
    names |= {"timeout", "runtim", "ramp_tim", "time_base", "nam", "ioengin", "iodept",
              "iodepth_batch", "iodepth_batch_submit", "program", "unlink"}
    return sorted(names)


FIO_NAMES = _fio_names()


def test_captured_fio_option_list_is_real():
    assert len(FIO_NAMES) > 200
    assert {"exec_prerun", "ioengine", "write_iolog", "server", "client", "trigger"} <= set(FIO_NAMES)
    assert set(fioopts.OPTIONS) <= set(FIO_NAMES)  # every allowed name is a real fio option


_values = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70),
    st.booleans(),
    st.text(max_size=30),
    st.sampled_from(["libaio", "io_uring", "exec", "external:/x.so", "4k", "1g", "99999t", "0",
                     "1", "random", "zipf:1.2", "0,1", "0-3", "/etc/passwd", "$ncpus", "1G;x"]),
    st.from_regex(r"\A[0-9]{1,6}[kmgKMG]?\Z"),
)
_options = st.dictionaries(
    st.one_of(st.sampled_from(FIO_NAMES), st.sampled_from(sorted(fioopts.OPTIONS)),
              st.text(max_size=12)),
    _values, max_size=6)


def _good_value(name: str):
    opt = fioopts.OPTIONS[name]
    if opt.kind == "bool":
        return st.sampled_from([True, False, 0, 1, "0", "1"])
    if opt.kind == "int":
        return st.integers(min_value=opt.lo, max_value=opt.hi)
    if opt.kind == "size":
        return st.integers(min_value=max(opt.lo, 1) // 1024 + 1, max_value=4096).map(
            lambda n: f"{n}k")
    if opt.kind == "choice":
        return st.sampled_from(opt.choices)
    if opt.kind == "cpus":
        return st.sampled_from(["0", "0,1", "0-3", "1,3-5"])
    if opt.kind == "bssplit":
        return st.sampled_from(["4k/10:64k/50:32k/40", "4k/100", "4k/50:8k/50,64k/100"])
    return st.sampled_from(["random", "zipf:1.2", "pareto:0.9", "normal:20"])


_good_options = st.lists(st.sampled_from(sorted(fioopts.OPTIONS)), max_size=6, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({n: _good_value(n) for n in names}))


def test_property_any_fio_options_accepted_only_if_allowed():
    """Each generated options dict is either accepted by the scenario and builds an argv of only
    allowed options, or refused with one line. Counts its cases (>= 1,000 a run)."""
    seen = {"cases": 0, "accepted": 0, "refused": 0}
    scn = load_scenario_text(SCN.replace("OPTS", "{}"))

    @settings(max_examples=1200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(st.one_of(_options, _good_options))
    def check(opts):
        seen["cases"] += 1
        try:
            from vbench.scenario.schema import Workload
            from vbench.workloads.fio import FioSpec

            w = Workload(name="w", fio=FioSpec(rw="randread", options=opts))
        except Exception as exc:  # pydantic ValidationError from the allow-list
            from pydantic import ValidationError

            assert isinstance(exc, ValidationError), exc
            from vbench.scenario.fielderrors import format_validation_error

            line = format_validation_error(exc, "scenario")
            assert "\n" not in line and len(line) < 600
            seen["refused"] += 1
            # refused at load => refused by fio_argv as well (two independent gates agree)
            with pytest.raises(ProbeError) as perr:
                fio_argv("w", "/x", opts, 5, 1)
            assert "\n" not in str(perr.value)
            return
        argv = fio_argv("w", "/x", scn.fio_options(scn.workloads[0]) | w.fio.options, 5, 1)
        seen["accepted"] += 1
        fixed = ["fio", "--output-format=json", "--name=w", "--filename=/x", "--time_based=1",
                 "--runtime=5", "--ramp_time=1"]
        assert argv[:7] == fixed
        for arg in argv[7:]:
            key, _, value = arg[2:].partition("=")
            assert key in fioopts.OPTIONS and key not in RESERVED_OPTIONS
            if key == "bssplit":  # its '/' separates a block size from its share: never a path
                assert re.fullmatch(r"[0-9]+[kKmMgGtT]?/[0-9]{1,3}([:,][0-9]+[kKmMgGtT]?/[0-9]{1,3})*",
                                    value), arg
            else:
                assert re.fullmatch(r"[A-Za-z0-9_.:,-]+", value), arg

    check()
    print(f"fio option property: {seen}")
    assert seen["cases"] >= 1000
    assert seen["accepted"] > 50 and seen["refused"] > 50  # both branches really exercised


def test_readme_documents_exactly_the_supported_set():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Running scenarios you did not write"):]
    section = section[: section.index("\n## ", 5)]
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, re.MULTILINE))
    assert documented == set(fioopts.OPTIONS)
