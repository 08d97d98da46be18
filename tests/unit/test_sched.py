"""The host scheduler's autogroup (vbench.host.sched): the fact a run records, the lab turning it
off with the old value on disk first and on again at ``down`` only when it is still what the lab
left, the remote host's shell output read through the allow-list, the fact on the page and in
the checked metadata. The kernel's file is a temporary file here: nothing touches the host."""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest

from vbench.host import lab, sched
from vbench.results import record

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers_runs

from helpers_runs import write_run  # noqa: E402


@pytest.fixture
def knob(tmp_path, monkeypatch):
    """The kernel's autogroup file, as a temporary file (on: the kernel's default)."""
    path = tmp_path / "sched_autogroup_enabled"
    path.write_text("1\n")
    monkeypatch.setattr(sched, "AUTOGROUP", path)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "vbhome"))
    return tmp_path / "vbhome"


@pytest.mark.parametrize("content, value, fact", [
    ("1\n", "1", "autogroup on"), ("0\n", "0", "autogroup off"), ("2\n", "unknown", "unknown"),
    ("", "unknown", "unknown"),
])
def test_the_fact_follows_the_kernels_value(knob, content, value, fact):
    knob.write_text(content)
    assert sched.read() == value and sched.fact(sched.read()) == fact


def test_a_kernel_without_autogroup_and_an_unreadable_file(knob):
    knob.unlink()
    assert sched.fact(sched.read()) == "no autogroup"
    knob.mkdir()  # reading a directory fails: not known, never guessed
    assert sched.read() == "unknown"


@pytest.mark.parametrize("said", ["", "yes", "1; rm -rf /", "<b>1</b>", "0 1"])
def test_anything_else_a_remote_shell_prints_is_unknown(said):
    assert sched.fact(said) == "unknown"


def test_the_lab_records_the_old_value_before_it_turns_autogroup_off(knob, home, monkeypatch):
    state, seen, real = lab.LabState(), [], sched.turn_off

    def turn_off():  # what is on disk when the write happens
        seen.append(json.loads((home / "lab" / "state.json").read_text())["autogroup_original"])
        return real()

    monkeypatch.setattr(sched, "turn_off", turn_off)
    line = lab._autogroup_off(state)
    assert seen == ["1"] and knob.read_text().strip() == "0"
    assert "turned off" in line and "lab down" in line
    assert lab.LabState.load().autogroup_original == "1"
    assert lab._autogroup_off(state) is None  # already off: nothing to do, the record stays
    assert lab.LabState.load().autogroup_original == "1"


def test_down_turns_it_on_again_only_when_still_off(knob, home):
    knob.write_text("0\n")
    assert sched.restore("1") == "turned scheduler autogroup on again"
    assert knob.read_text().strip() == "1"
    knob.write_text("0\n")
    assert sched.restore(None) is None and knob.read_text().strip() == "0"  # not ours: left off


def test_down_leaves_a_value_someone_set_since(knob):
    knob.write_text("1\n")  # someone turned it on again while the lab was up
    assert "left as it is" in sched.restore("1")
    assert knob.read_text().strip() == "1"


def test_a_write_the_kernel_refuses_is_said_and_not_recorded(knob, home, monkeypatch):
    def refused():
        return False, "scheduler autogroup is on and could not be turned off (read-only)"

    monkeypatch.setattr(sched, "turn_off", refused)
    state = lab.LabState()
    assert "could not be turned off" in lab._autogroup_off(state)
    assert state.autogroup_original is None and lab.LabState.load().autogroup_original is None


def test_up_then_down_leave_the_setting_as_found(knob, home):
    state = lab.LabState()
    lab._autogroup_off(state)
    assert knob.read_text().strip() == "0"
    assert sched.restore(lab.LabState.load().autogroup_original) is not None
    assert knob.read_text().strip() == "1"
    knob.write_text("0\n")  # a host where it was off before the lab: the lab records nothing
    state = lab.LabState()
    assert lab._autogroup_off(state) is None and state.autogroup_original is None


def test_local_facts_say_the_scheduler(knob, monkeypatch):
    from vbench.core import procs
    from vbench.core.errors import LabError
    from vbench.host import hosts, libvirtd

    def unreachable(uri):
        raise LabError(f"cannot connect to {uri}")

    monkeypatch.setattr(libvirtd, "open_connection", unreachable)
    monkeypatch.setattr(procs, "run", lambda *a, **k: SimpleNamespace(stdout="", ok=False))
    knob.write_text("0\n")
    assert hosts.local_facts("qemu:///system")["host_scheduler"] == "autogroup off"


@pytest.mark.parametrize("lines, fact", [
    (["autogroup=1"], "autogroup on"),
    (["autogroup=0"], "autogroup off"),
    (["autogroup=none"], "no autogroup"),            # the kernel has no such file
    (["autogroup="], "unknown"),                     # the shell printed nothing
    ([], "unknown"),                                 # no line for it at all
    (["autogroup=<b>2</b>"], "unknown"),             # junk: the allow-list
])
def test_a_remote_hosts_facts_say_its_scheduler(monkeypatch, lines, fact):
    from vbench.host import libvirtd, remote

    out = ["node=node1", "kernel=6.1.0", "cpus=8", "kvm=kvm_amd", *lines]
    host = object.__new__(remote.RemoteHost)
    host.ssh = SimpleNamespace(run=lambda script, timeout: SimpleNamespace(
        stdout="\n".join(out) + "\n"))
    host.target = SimpleNamespace(public_uri="qemu+ssh://node1/system", host="node1",
                                  path=PurePosixPath("/"))
    monkeypatch.setattr(libvirtd, "daemon_facts", lambda uri: {})
    facts = host.host_facts("qemu+ssh://node1/system")
    assert facts["host_scheduler"] == fact
    assert facts["kvm_module"] == "kvm_amd" and facts["cpus"] == 8


def test_runs_under_another_scheduler_setting_are_not_pooled():
    from vbench.results.record import Environment, RunRecord

    def rec(**env):
        return RunRecord(run_id="r", status="complete", environment=Environment(**env))

    a, b = rec(host_scheduler="autogroup off"), rec(host_scheduler="autogroup on")
    assert set(record.metadata_differences(a, b)) == {"host_scheduler"}
    assert record.metadata_differences(a, rec()) == {}  # a run before it was recorded


def test_the_context_strip_and_environment_table_say_the_scheduler(tmp_path):
    from vbench.report import build_report

    run = write_run(tmp_path / "results", "20261207-050000-nic", kind="nic")
    meta = json.loads((run / "run.json").read_text())
    meta["environment"]["host_scheduler"] = "autogroup on"
    (run / "run.json").write_text(json.dumps(meta))
    text = build_report([run], tmp_path / "r").read_text(encoding="utf-8")
    strip = text.split('class="strip"')[1].split("</div>")[0]
    assert "host scheduler" in strip and "autogroup on" in strip
    assert "Host scheduler" in text


def test_a_hostile_scheduler_fact_in_a_shared_run_is_escaped(tmp_path):
    """run.json is untrusted: whatever its host_scheduler says is text on the page, never markup."""
    from vbench.report import build_report

    hostile = "<script>alert(1)</script>"
    run = write_run(tmp_path / "results", "20261207-050000-nic", kind="nic")
    meta = json.loads((run / "run.json").read_text())
    meta["environment"]["host_scheduler"] = hostile
    (run / "run.json").write_text(json.dumps(meta))
    text = build_report([run], tmp_path / "r").read_text(encoding="utf-8")
    assert hostile not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_users_own_libvirt_here_is_left_on_and_said(knob, home, monkeypatch):
    from vbench.host import libvirtd

    class Conn:
        def close(self):
            pass

    monkeypatch.setattr(libvirtd, "open_connection", lambda uri: Conn())
    monkeypatch.setattr(lab, "check_subnets", lambda conn, uri: None)
    monkeypatch.setattr(libvirtd, "ensure_network", lambda conn, name, xml: False)
    said: list[str] = []
    lab.up(connect="qemu:///system", progress=said.append)
    assert said == [sched.LEFT_ON] and knob.read_text().strip() == "1"
    assert lab.LabState.load().autogroup_original is None  # nothing of the lab's to undo
    knob.write_text("0\n")
    said.clear()
    lab.up(connect="qemu:///system", progress=said.append)
    assert said == []
