"""fio job files in scenarios (``fio: {jobfile: NAME.fio}``): job files written the way fio's own
examples are become one workload per job with the [global] options; hostile ones are refused,
every problem one line with the file, line and field path, before anything boots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vbench.commands import preflight
from vbench.scenario.budget import HostFigures
from vbench.core.errors import ScenarioError
from vbench.workloads.fio import fio_argv
from vbench.scenario.schema import load_scenario, load_scenario_text

BIG = HostFigures(free_disk_gib=1000, mem_available_mib=1 << 20, cpus=64)
SCENARIO = """\
name: jobs
device: disk
variants:
  - {name: virtio-blk, disk: {bus: virtio}}
  - {name: sata, disk: {bus: sata}}
workloads:
  - name: ssd
    fio: {jobfile: JOBFILE}
"""

# fio's examples/ssd-test.fio, without its directory= and filename= (vbench sets the target)
SSD_TEST = """\
# Do some important numbers on SSD drives, to gauge what kind of
# performance you might get out of them.
[global]
bs=4k
ioengine=libaio
iodepth=4
size=1g
direct=1
runtime=60

[seq-read]
rw=read
stonewall

[rand-read]
rw=randread
stonewall

[seq-write]
rw=write
stonewall

[rand-write]
rw=randwrite
stonewall
"""

# in the manner of fio's examples/fio-rand-RW.fio: a mixed job with its global section
RAND_RW = """\
; fio-rand-RW.job for fiotest

[global]
name=fio-rand-RW
rw=randrw
rwmixread=60
rwmixwrite=40
bs=4K
direct=0
numjobs=4
time_based
runtime=900

[file1]
size=1G
ioengine=libaio
iodepth=16
"""

BSSPLIT = """\
[global]
ioengine=libaio
direct=1
time_based
runtime=10s
ramp_time=2s

[mixed-sizes]
rw=randread
bssplit=4k/10:64k/50:32k/40
iodepth=8
group_reporting

[mixed-writes]
rw=randwrite
bssplit=4k/50:8k/50,64k/100
"""


def scenario_with(tmp_path: Path, jobfile_text: str, name: str = "jobs.fio") -> Path:
    (tmp_path / name).write_text(jobfile_text)
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO.replace("JOBFILE", name))
    return path


def test_ssd_test_example_becomes_four_workloads_with_the_global_options(tmp_path):
    scn = load_scenario(scenario_with(tmp_path, SSD_TEST))
    assert [w.name for w in scn.workloads] == ["ssd-seq-read", "ssd-rand-read", "ssd-seq-write",
                                                "ssd-rand-write"]
    assert [w.fio.rw for w in scn.workloads] == ["read", "randread", "write", "randwrite"]
    w = scn.workloads[1]
    assert (w.fio.bs, w.fio.iodepth, w.fio.runtime) == ("4k", 4, 60)
    opts = scn.fio_options(w)
    assert opts["size"] == "1g" and opts["direct"] == "1" and opts["ioengine"] == "libaio"
    runtime, ramp = scn.fio_runtime(w)
    argv = fio_argv(w.name, "/dev/vdb", opts, runtime, ramp)
    assert "--rw=randread" in argv and "--size=1g" in argv and "--filename=/dev/vdb" in argv


def test_rand_rw_example_keeps_the_mix(tmp_path):
    scn = load_scenario(scenario_with(tmp_path, RAND_RW))
    (w,) = scn.workloads
    assert w.name == "ssd-file1" and w.fio.rw == "randrw" and w.fio.numjobs == 4
    assert (w.fio.iodepth, w.fio.runtime) == (16, 900)
    opts = scn.fio_options(w)
    assert (opts["rwmixread"], opts["rwmixwrite"], opts["size"]) == ("60", "40", "1G")
    assert opts["group_reporting"] == 1  # numjobs > 1: reported as one group


def test_bssplit_and_time_suffixes(tmp_path):
    scn = load_scenario(scenario_with(tmp_path, BSSPLIT))
    a, b = scn.workloads
    assert scn.fio_runtime(a) == (10, 2)
    assert scn.fio_options(a)["bssplit"] == "4k/10:64k/50:32k/40"
    assert scn.fio_options(b)["bssplit"] == "4k/50:8k/50,64k/100"
    argv = fio_argv(a.name, "/dev/vdb", scn.fio_options(a), 10, 2)
    assert "--bssplit=4k/10:64k/50:32k/40" in argv


def test_validate_and_the_recorded_text_are_self_contained(tmp_path):
    path = scenario_with(tmp_path, SSD_TEST)
    scn, problems = preflight.check_scenario_text(path.read_text(), str(path), host=BIG,
                                                  base_dir=tmp_path)
    assert problems == []
    _scn, text, _p = preflight.require_scenario(path, host=BIG)
    (tmp_path / "jobs.fio").unlink()  # a resumed run or a report needs no job file
    again = load_scenario_text(text)
    assert [w.name for w in again.workloads] == [w.name for w in scn.workloads]


HOSTILE = {
    "include": ("[global]\ninclude /etc/fio/other.fio\n[a]\nrw=read\n", [":2: include"]),
    "filename": ("[a]\nrw=read\nfilename=/etc/passwd\n", [":3: filename: vbench sets the target"]),
    "directory": ("[global]\ndirectory=/\n[a]\nrw=read\n", [":2: directory:"]),
    "exec": ("[a]\nioengine=exec\nexec_prerun=rm -rf /\n", ["ioengine=", "'exec_prerun'"]),
    "variables": ("[a]\nrw=read\nsize=${SIZE}\n", [":3: size: fio variables"]),
    "output": ("[a]\noutput=/etc/cron.d/x\n", [":2: output:"]),
    "huge size": ("[a]\nrw=read\nsize=99999t\n", ["size=", "is invalid"]),
    "bad bssplit": ("[a]\nbssplit=4k/60:8k/60\n[b]\nbssplit=999m/10\n", ["[a]", "[b]"]),
    "prefix alias": ("[a]\nruntim=10\ntimeout=5\n", ["'runtim'", "'timeout'"]),
    "bad runtime": ("[a]\nruntime=1h\n", ["runtime='1h'"]),
    "no job": ("[global]\nrw=read\n", ["no job section"]),
    "outside section": ("rw=read\n[a]\n", [":1: 'rw' is outside"]),
    "twice": ("[a]\nrw=read\nrw=write\n", [":3: rw is given twice"]),
    "too many jobs": ("".join(f"[j{i}]\nrw=read\n" for i in range(33)), ["33 jobs"]),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_job_files_are_refused_with_every_problem(tmp_path, name):
    text, needles = HOSTILE[name]
    path = scenario_with(tmp_path, text)
    problems = preflight.check_file(path).problems
    assert problems, name
    for needle in needles:
        assert any(needle in p for p in problems), (needle, problems)
    for p in problems:
        assert p.startswith(f"{path}: workloads[0].fio.jobfile: ") and "\n" not in p
    with pytest.raises(ScenarioError):
        load_scenario(path)


@pytest.mark.parametrize("jobfile", ["../jobs.fio", "/etc/fio.fio", "jobs.ini", "sub/x.fio", 3])
def test_job_file_names_are_bare_names_next_to_the_scenario(tmp_path, jobfile):
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("JOBFILE", repr(jobfile) if isinstance(jobfile, str)
                                     else str(jobfile)))
    (problem,) = preflight.check_file(path).problems
    assert "is not a job file name next to the scenario" in problem


def test_not_a_regular_file_nor_a_link_nor_too_big(tmp_path):
    (tmp_path / "dir.fio").mkdir()
    os.mkfifo(tmp_path / "fifo.fio")
    (tmp_path / "real.fio").write_text(SSD_TEST)
    (tmp_path / "link.fio").symlink_to(tmp_path / "real.fio")
    (tmp_path / "big.fio").write_text("[a]\nrw=read\n" + "; padding\n" * 8000)
    for name, needle in (("dir.fio", "is a directory"), ("fifo.fio", "not a regular file"),
                         ("link.fio", "symbolic link"), ("big.fio", "larger than 64 KiB"),
                         ("missing.fio", "no such file")):
        path = tmp_path / "s.yaml"
        path.write_text(SCENARIO.replace("JOBFILE", name))
        (problem,) = preflight.check_file(path).problems
        assert needle in problem, (name, problem)


def test_jobfile_with_other_fio_fields_is_refused(tmp_path):
    (tmp_path / "jobs.fio").write_text(SSD_TEST)
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("{jobfile: JOBFILE}", "{jobfile: jobs.fio, rw: read}"))
    (problem,) = preflight.check_file(path).problems
    assert "with a job file, set rw in the file" in problem


def test_a_scenario_text_without_its_file_says_so():
    with pytest.raises(ScenarioError, match="jobfile: a fio job file is read next to a scenario"):
        load_scenario_text(SCENARIO.replace("JOBFILE", "jobs.fio"))
