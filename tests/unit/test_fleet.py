"""vbench fleet: the hosts file (hostile inputs), machine identities, the scheduler (hosts of one
machine never overlap), the child launcher (failures, forwarded signals), the index and the
side-by-side comparison of stored runs."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from vbench.core.errors import UserError
from vbench.fleet import compare, hosts, identity, index, launch, schedule
from vbench.fleet.hosts import Host

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "tests" / "data" / "runs"
GOOD = """
hosts:
  - name: lab
  - name: kvm-b
    connect: qemu+ssh://root@kvm-b.example/system
  - name: own_lv
    connect: qemu:///system
    netns: users-ns
    env: {VBENCH_MGMT_SUBNET: 10.231.0.0/24, VBENCH_TEST_SUBNET: 10.231.1.0/24}
"""


def _load(tmp_path: Path, text: str) -> list[Host]:
    p = tmp_path / "hosts.yaml"
    p.write_text(text)
    return hosts.load_hosts(p)


def test_a_good_hosts_file(tmp_path):
    hs = _load(tmp_path, GOOD)
    assert [h.name for h in hs] == ["lab", "kvm-b", "own_lv"]
    assert hs[0].connect is None and hs[0].local
    assert not hs[1].local and hs[2].local and hs[2].netns == "users-ns"
    assert hs[2].env == {"VBENCH_MGMT_SUBNET": "10.231.0.0/24", "VBENCH_TEST_SUBNET": "10.231.1.0/24"}
    assert _load(tmp_path, "- name: a\n- {name: b, connect: 'qemu:///system'}\n")[1].local


HOSTILE = [
    ("- name: ../../etc\n", "not a host name"),
    ("- name: 'a;rm -rf /'\n", "not a host name"),
    ("- name: 'a b'\n", "not a host name"),
    ("- name: -rf\n", "not a host name"),
    ("- name: " + "a" * 33 + "\n", "not a host name"),
    ("- name: 7\n", "not a host name"),
    ("- {name: a, shell: 'id'}\n", "unknown field 'shell'"),
    ("- {name: a, connect: 'qemu+ssh://h/system; reboot'}\n", "not a libvirt URI"),
    ("- {name: a, connect: 'file:///etc/passwd'}\n", "not a libvirt URI"),
    ("- {name: a, connect: '--help'}\n", "not a libvirt URI"),
    ("- {name: a, connect: \"qemu:///system\\nx\"}\n", "not a libvirt URI"),
    ("- {name: a, env: {LD_PRELOAD: /tmp/evil.so}}\n", "LD_PRELOAD' is not allowed"),
    ("- {name: a, env: {VBENCH_MGMT_SUBNET: 'not-a-net'}}\n", "VBENCH_MGMT_SUBNET"),
    ("- {name: a, env: {VBENCH_TEST_SUBNET: '10.0.0.0/30'}}\n", "64 to 65536 addresses"),
    ("- {name: a, env: {VBENCH_HOME: 'relative/dir'}}\n", "/var/lib/vbench/homes/NAME"),
    ("- {name: a, env: {VBENCH_HOME: '/x/../etc'}}\n", "/var/lib/vbench/homes/NAME"),
    ("- {name: a, env: {VBENCH_ACCEL: 'kvm -x'}}\n", "kvm or tcg"),
    ("- {name: a, env: [VBENCH_ACCEL]}\n", "env must be a mapping"),
    ("- {name: a, netns: '../x'}\n", "not a network namespace name"),
    ("- {name: a, connect: 'qemu+ssh://root@h/system', netns: ns}\n", "netns only applies"),
    ("- {name: a}\n- {name: A}\n", "appears twice"),
    ("- {name: a, machine: 'box/../1'}\n", "not a machine name"),
    ("[]\n", "non-empty list"),
    ("name: a\n", "only `hosts:`"),
    ("- just-a-string\n", "each host is a mapping"),
    ("".join(f"- name: h{i}\n" for i in range(hosts.MAX_HOSTS + 1)), "at most 32"),
    ("a: &a [1]\nb: *a\n", "aliases"),
    ("- {name: a\n", "not valid YAML"),
]


@pytest.mark.parametrize("text, message", HOSTILE)
def test_hostile_hosts_files_are_refused_in_one_line(tmp_path, text, message):
    with pytest.raises(UserError) as exc:
        _load(tmp_path, text)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 400


def test_a_huge_or_special_hosts_file_is_refused(tmp_path):
    with pytest.raises(UserError, match="larger than"):
        _load(tmp_path, "- name: a\n" + "#" * (hosts.MAX_FILE_BYTES + 1))
    with pytest.raises(UserError, match="not a regular file"):
        hosts.load_hosts(Path("/dev/zero"))


# ---- identities and the scheduler -----------------------------------------------------------------

def test_identity_keys_from_libvirt_and_of_this_machine():
    caps = "<capabilities><host><uuid>FE989F3D-48b3-44ce-b437-efe1b7f017a1</uuid></host></capabilities>"
    sysinfo = "<sysinfo><system><entry name='uuid'>00000000-0000-0000-0000-000000000000</entry>" \
              "</system></sysinfo>"
    assert identity.keys_from_libvirt("KVM-B", caps, sysinfo) == {
        "hostname:kvm-b", "host-uuid:fe989f3d-48b3-44ce-b437-efe1b7f017a1"}  # zero uuid ignored
    me = identity.this_machine()
    assert any(k.startswith("machine:") for k in me) and any(k.startswith("hostname:") for k in me)
    assert identity.identify(Host("lab")) == me
    assert identity.identify(Host("u", "qemu:///session")) == me


def test_a_declared_machine_joins_hosts_libvirt_cannot_tell_apart(monkeypatch, tmp_path):
    """Two libvirtds in namespaces of one machine: own host names, made-up host UUIDs."""
    hs = _load(tmp_path, "- {name: ns-a, connect: 'qemu+ssh://root@10.0.0.2/system', machine: box1}\n"
                         "- {name: ns-b, connect: 'qemu+ssh://root@10.0.0.3/system', machine: BOX1}\n"
                         "- {name: other, connect: 'qemu+ssh://root@10.0.0.4/system'}\n")
    told = {h.connect: frozenset({f"hostname:{h.name}", f"host-uuid:{i}"}) for i, h in enumerate(hs)}
    monkeypatch.setattr(identity, "ask_libvirt", lambda uri: told[uri])
    ids = {h.name: identity.identify(h) for h in hs}
    assert [[h.name for h in g] for g in schedule.group_hosts(hs, ids)] == [["ns-a", "ns-b"], ["other"]]
    hs[0] = Host("ns-a", hs[0].connect)  # without the declaration: three machines
    ids = {h.name: identity.identify(h) for h in hs}
    assert len(schedule.group_hosts(hs, ids)) == 3


def _hosts(*names: str) -> list[Host]:
    return [Host(n, None if i == 0 else f"qemu+ssh://root@{n}/system") for i, n in enumerate(names)]


def test_hosts_sharing_any_key_are_one_machine_transitively():
    hs = _hosts("a", "b", "c", "d", "e")
    ids = {"a": frozenset({"m:1"}), "b": frozenset({"m:2", "h:x"}), "c": frozenset({"m:1"}),
           "d": frozenset({"h:x", "m:3"}), "e": frozenset({"m:4"})}
    groups = schedule.group_hosts(hs, ids)
    assert [[h.name for h in g] for g in groups] == [["a", "c"], ["b", "d"], ["e"]]


class Recorder:
    """A fake run: sleeps, records its time span, checks nobody else of its machine runs."""

    def __init__(self, machine_of: dict[str, str], seconds: float = 0.15) -> None:
        self.machine_of, self.seconds = machine_of, seconds
        self.lock, self.busy, self.calls = threading.Lock(), {}, []

    def __call__(self, host: Host, group: int) -> schedule.Outcome:
        o = schedule.Outcome(host, group, started=time.monotonic())
        time.sleep(self.seconds)
        o.finished, o.status = time.monotonic(), "complete"
        with self.lock:
            self.calls.append(host.name)
        return o


def _machines(outcomes, machine_of):
    by: dict[str, list] = {}
    for o in outcomes:
        by.setdefault(machine_of[o.host.name], []).append(o)
    return by


def test_same_machine_hosts_never_overlap_and_machines_run_in_parallel():
    hs = _hosts("a1", "a2", "a3", "b1", "c1", "c2")
    machine_of = {h.name: h.name[0] for h in hs}
    ids = {n: frozenset({f"machine:{m}"}) for n, m in machine_of.items()}
    rec = Recorder(machine_of)
    t0 = time.monotonic()
    out = schedule.run_groups(schedule.group_hosts(hs, ids), rec, threading.Event())
    took = time.monotonic() - t0
    assert [o.host.name for o in out] == ["a1", "a2", "a3", "b1", "c1", "c2"]
    assert all(o.ok for o in out)
    for m, mine in _machines(out, machine_of).items():
        assert schedule.overlaps(mine) == [], f"machine {m} measured two hosts at once"
    pairs = {frozenset(p) for p in schedule.overlaps(out)}
    assert frozenset({"a1", "b1"}) in pairs and frozenset({"a1", "c1"}) in pairs  # in parallel
    assert took < 6 * rec.seconds  # not all in series


def test_the_overlap_check_catches_a_scheduler_that_ignores_machines():
    """The same check on a wrong schedule (every host its own group) does find the overlap."""
    hs = _hosts("a1", "a2")
    rec = Recorder({"a1": "a", "a2": "a"})
    out = schedule.run_groups([[h] for h in hs], rec, threading.Event())
    assert schedule.overlaps(out) == [("a1", "a2")]


def test_a_stop_skips_the_hosts_not_started():
    hs = _hosts("a1", "a2", "a3")
    stop = threading.Event()
    calls = []

    def run_one(host, group):
        calls.append(host.name)
        stop.set()  # Ctrl-C while the first host of the machine runs
        return schedule.Outcome(host, group, status="interrupted")

    out = {o.host.name: o for o in schedule.run_groups([hs], run_one, stop)}
    assert calls == ["a1"] and out["a1"].status == "interrupted"
    assert out["a2"].status == out["a3"].status == "skipped"


def test_a_crash_of_one_host_stays_that_hosts_failure():
    hs = _hosts("a1", "a2", "b1")

    def run_one(host, group):
        if host.name == "a1":
            raise RuntimeError("libvirt went away")
        return schedule.Outcome(host, group, status="complete")

    out = {o.host.name: o for o in schedule.run_groups([hs[:2], hs[2:]], run_one, threading.Event())}
    assert out["a1"].status == "failed" and "libvirt went away" in out["a1"].message
    assert out["a2"].ok and out["b1"].ok


# ---- the child processes -------------------------------------------------------------------------

def test_child_argv_is_a_list_with_the_hosts_values_as_single_elements():
    h = Host("x", "qemu+unix:///system?socket=/a b;c", "ns1", {"VBENCH_ACCEL": "tcg"})
    argv = launch.child_argv(h, "scenarios/smoke-disk.yaml", Path("/f/hosts/x"), ["--repetitions", "2"],
                             python="/py")
    assert argv[:4] == ["ip", "netns", "exec", "ns1"]
    assert argv[4:] == ["/py", "-m", "vbench", "run", "scenarios/smoke-disk.yaml", "--results",
                        "/f/hosts/x", "--no-report", "--repetitions", "2", "--connect",
                        "qemu+unix:///system?socket=/a b;c"]
    assert launch.child_argv(Host("lab"), "s.yaml", Path("r"))[-1] == "--no-report"
    env = launch.child_env(h, {"PATH": "/bin", "VBENCH_ACCEL": "kvm"})
    assert env == {"PATH": "/bin", "VBENCH_ACCEL": "tcg"}


def test_a_failing_host_gives_one_line_and_no_run(tmp_path):
    lines: list[str] = []
    lnch = launch.Launcher(str(tmp_path / "missing.yaml"), tmp_path / "hosts", lines.append)
    o = lnch.run(Host("lab"), 0)
    assert o.status == "failed" and o.exit_status not in (0, None) and o.run_dir is None
    assert "missing.yaml" in o.message and "\n" not in o.message
    assert any(line.startswith("[lab] vbench: error:") for line in lines)
    assert (tmp_path / "hosts" / "lab" / "run.log").read_text().strip()


def test_a_host_whose_units_failed_says_which_and_why(tmp_path):
    """Exit 11 (units failed): the fleet's line names the failed units and their recorded reasons,
    read from the run's record, not the child's last printed line (its ``run:`` path)."""
    run = tmp_path / "run"
    shutil.copytree(RUNS / "20261126-113024-smoke-disk", run)
    rec = json.loads((run / "run.json").read_text())
    rec["failures"] = [
        {"variant": "sata", "workload": "randread", "repetition": 2,
         "error": "fio in the guest timed out after 120 s\nmore detail", "error_type": "Timeout"},
        {"variant": "ide", "workload": "*", "error": "", "error_type": "BootError"}]
    (run / "run.json").write_text(json.dumps(rec))
    status, msg = launch.classify(launch.UNITS_FAILED, run, "")
    assert status == "failed"
    assert msg == ("2 failure(s): sata rep 2 randread: fio in the guest timed out after 120 s; "
                   "ide: BootError")
    rec["failures"] = [{"variant": "sata", "workload": "*", "error": "x" * 2000}]
    (run / "run.json").write_text(json.dumps(rec))
    assert len(launch.classify(launch.UNITS_FAILED, run, "")[1]) == launch.MESSAGE_CHARS
    (run / "run.json").write_text("{not json")  # an unreadable record: the child's own words
    assert launch.classify(launch.UNITS_FAILED, run, "boom") == ("failed", "boom")


TRAP = """
import signal, sys, time, pathlib
out = pathlib.Path(sys.argv[1])
def bye(signum, frame):
    print(f"signal {signum}", flush=True)
    time.sleep(0.3)            # "cleaning up its guests"
    out.write_text(str(signum))
    print("vbench: interrupted; guests destroyed and results so far kept", flush=True)
    sys.exit(130)
signal.signal(signal.SIGTERM, bye)
print("booting", flush=True)
time.sleep(60)
"""


def test_an_interrupt_is_forwarded_to_every_child_and_waited_for(tmp_path, monkeypatch):
    def fake_argv(host, scenario, results, extra=(), python=sys.executable):
        return [python, "-c", TRAP, str(tmp_path / f"{host.name}.signal")]

    monkeypatch.setattr(launch, "child_argv", fake_argv)
    lines: list[str] = []
    lnch = launch.Launcher("s.yaml", tmp_path / "hosts", lines.append)
    hs = [Host("a"), Host("b", "qemu+ssh://root@b/system"), Host("a2")]
    ids = {"a": frozenset({"m:a"}), "a2": frozenset({"m:a"}), "b": frozenset({"m:b"})}
    groups = schedule.group_hosts(hs, ids)
    def ctrl_c_twice():
        lnch.interrupt()
        time.sleep(0.1)  # the children are cleaning up now: a second signal must not reach them
        lnch.interrupt()

    timer = threading.Timer(1.0, ctrl_c_twice)
    timer.start()
    out = {o.host.name: o for o in schedule.run_groups(groups, lnch.run, lnch.stop)}
    assert sorted(ln for ln in lines if ln.endswith("signal 15")) == ["[a] signal 15", "[b] signal 15"]
    assert (tmp_path / "a.signal").read_text() == str(int(signal.SIGTERM))
    assert (tmp_path / "b.signal").read_text() == str(int(signal.SIGTERM))
    assert out["a"].status == out["b"].status == "interrupted" and out["a"].exit_status == 130
    assert out["a2"].status == "skipped" and not (tmp_path / "a2.signal").exists()
    assert "[a] booting" in lines and "[b] booting" in lines


# ---- index and side by side ----------------------------------------------------------------------

def _relabelled_run(dst_root: Path, src: Path, host: str) -> Path:
    """A copy of a stored run whose samples and record say they were measured on ``host``."""
    dst = dst_root / src.name
    shutil.copytree(src, dst)
    rec = json.loads((dst / "run.json").read_text())
    rec["environment"]["host"] = host
    (dst / "run.json").write_text(json.dumps(rec))
    lines = (dst / "samples.csv").read_text().splitlines()
    (dst / "samples.csv").write_text("\n".join([lines[0]] + [ln.rsplit(",", 1)[0] + f",{host}"
                                                              for ln in lines[1:]]) + "\n")
    return dst


@pytest.fixture
def fleet_dir(tmp_path):
    fleet = tmp_path / "fleet"
    a = _relabelled_run(fleet / "hosts" / "kvm-a", RUNS / "20261126-113024-smoke-disk", "kvm-a")
    b = _relabelled_run(fleet / "hosts" / "kvm-b", RUNS / "20261126-113314-smoke-disk", "kvm-b")
    outs = [schedule.Outcome(Host("kvm-a"), 0, "complete", 0, a, "", 1.0, 2.0),
            schedule.Outcome(Host("kvm-b", "qemu+ssh://root@b/system"), 1, "complete", 0, b, "",
                             1.5, 2.5),
            schedule.Outcome(Host("kvm-c"), 2, "failed", 5, None, "no image", 1.0, 1.1)]
    index.write_index(fleet, "smoke-disk", 0.5, outs, {"kvm-a": frozenset({"m:a"})}, "partial")
    return fleet


def test_the_index_names_every_host_and_only_runs_inside_the_fleet(fleet_dir):
    doc = json.loads((fleet_dir / "fleet.json").read_text())
    assert doc["status"] == "partial" and [h["name"] for h in doc["hosts"]] == ["kvm-a", "kvm-b", "kvm-c"]
    assert doc["hosts"][0]["run"] == "hosts/kvm-a/20261126-113024-smoke-disk"
    assert doc["hosts"][2]["run"] is None and doc["hosts"][2]["message"] == "no image"
    assert "m:a" not in json.dumps(doc)  # identity keys are stored as a digest only
    assert [n for n, _p in index.fleet_runs(fleet_dir)] == ["kvm-a", "kvm-b"]
    assert not list(fleet_dir.glob(".fleet.json.*"))  # no temporary file left
    for bad_run, bad_name in (("../../etc", "x"), ("/etc", "x"), ("hosts/kvm-a/x", "x"),
                              ("hosts/kvm-a/20261126-113024-smoke-disk", "../x")):
        doc["hosts"][0].update(run=bad_run, name=bad_name)
        (fleet_dir / "fleet.json").write_text(json.dumps(doc))
        with pytest.raises(UserError):
            index.fleet_runs(fleet_dir)


def test_side_by_side_puts_each_hosts_own_ratio_in_its_column(fleet_dir):
    from vbench.stats import summary

    runs = index.fleet_runs(fleet_dir)
    r = compare.host_ratios(runs)
    header, rows = compare.side_by_side(r, ["kvm-a", "kvm-b"])
    assert header == ["workload", "metric", "paravirtual / emulated", "kvm-a", "kvm-b"]
    iops = {row[0]: row for row in rows if row[1] == "IOPS"}
    assert set(iops) == {"randread-4k-qd32", "seqwrite-1m"}
    for col, (_name, path) in zip((3, 4), runs):  # each column is that host's run alone
        from vbench.results.rundir import load_samples

        alone = summary.ratios(summary.prepare(load_samples(path)))
        x = alone[(alone.workload == "randread-4k-qd32") & (alone.metric == "iops")].iloc[0]
        assert iops["randread-4k-qd32"][col] == compare.cell(x)
    assert iops["randread-4k-qd32"][3] != iops["randread-4k-qd32"][4]
    assert compare.side_by_side(r, ["kvm-a", "kvm-b", "kvm-z"])[1][0][-1] == "-"


def test_fleet_compare_and_report_commands(fleet_dir, tmp_path, capsys):
    from vbench.commands import main

    assert main(["fleet", "compare", str(fleet_dir), "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    head = next(ln for ln in out.splitlines() if ln.startswith("workload"))
    assert head.split()[-2:] == ["kvm-a", "kvm-b"]
    data = json.loads((tmp_path / "c.json").read_text())
    assert {d["fleet_host"] for d in data} == {"kvm-a", "kvm-b"}
    assert main(["fleet", "report", str(fleet_dir)]) == 0
    html = (fleet_dir / "report" / "index.html").read_text()
    assert "<h3>kvm-a <span" in html and "<h3>kvm-b <span" in html  # one context strip per host
    assert "<h3>20261126-113024-smoke-disk" not in html
    assert (fleet_dir / "report" / "headline-ratios.png").stat().st_size > 1000
    assert main(["fleet", "compare", "--run", "bad name=/tmp"]) == 2


def test_remote_identity_probe_goes_through_the_pinned_ssh(tmp_path, monkeypatch):
    """The fleet asks a qemu+ssh host who it is only over a pinned host key, as a run does."""
    import libvirt

    from vbench.core.errors import LabError
    from vbench.host.ssh import new_client_key

    _, pub = new_client_key()
    (tmp_path / "known_hosts").write_text(f"10.0.0.5 {pub}\n")
    (tmp_path / "key").write_text("x")
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VBENCH_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("VBENCH_SSH_KEY", str(tmp_path / "key"))
    opened = []

    class Conn:
        def getHostname(self):
            return "hv5"

        def getCapabilities(self):
            return ""

        def getSysinfo(self, flags=0):
            return ""

        def close(self):
            pass

    monkeypatch.setattr(libvirt, "openReadOnly", lambda uri: opened.append(uri) or Conn())
    assert identity.ask_libvirt("qemu+ssh://root@10.0.0.5/system") == {"hostname:hv5"}
    assert opened[0].startswith("qemu+ssh://root@10.0.0.5/system?command=")
    wrapper = Path(opened[0].split("command=")[1].split("&")[0])
    assert "StrictHostKeyChecking=yes" in wrapper.read_text()
    with pytest.raises(LabError, match="never accepts an unknown host key"):
        identity.ask_libvirt("qemu+ssh://root@10.0.0.6/system")
    assert len(opened) == 1, "an unknown host was dialled"
