"""Probe placement (vbench.workloads.placement): the NIC's interrupts on vCPU 0 and iperf3 on the
last vCPU, set before each run and read back after it; every reading the guest gives is checked.

The layout script runs for real (``sh``) against a sysfs/procfs tree built in a temporary
directory, with ``ip`` and ``getconf`` stand-ins on PATH; the iperf3 executor runs against a fake
guest at its shell seam."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from vbench.core.errors import GuestError, ProbeError, RemoteCommandError
from vbench.core.metrics import CommandResult
from vbench.scenario.schema import load_scenario_text
from vbench.workloads import placement
from vbench.workloads.iperf3 import WORKLOAD as IPERF3

DATA = Path(__file__).resolve().parents[1] / "data"
IPERF3_JSON = (DATA / "iperf3-tcp-host-to-guest-e1000-slirp.json").read_text()
GUEST_IP = "10.213.0.10"


# ---- the scenario check ---------------------------------------------------------------------

def test_split_needs_two_vcpus_and_says_which_field_to_change():
    assert placement.problems("split", 2) == [] and placement.problems("free", 1) == []
    text = (Path(__file__).resolve().parents[2] / "scenarios" / "net.yaml").read_text()
    assert "vcpus: 2" in text
    with pytest.raises(Exception) as exc:
        load_scenario_text(text.replace("vcpus: 2", "vcpus: 1"))
    msg = str(exc.value)
    assert "workloads[0].iperf3.placement: split needs at least 2 vCPUs" in msg
    assert "placement: free" in msg
    free = (text.replace("omit: 2}", "omit: 2, placement: free}")
            .replace("omit: 1}", "omit: 1, placement: free}").replace("vcpus: 2", "vcpus: 1"))
    assert all(w.iperf3.placement == "free" for w in load_scenario_text(free).workloads
               if w.tool == "iperf3")


# ---- the guest's answers, read fail-closed ----------------------------------------------------

GOOD = "ifname=eth1\nirqs=32,33,34\nwas=0-1 0-1 1\nirq_cpus=0\nprobe_cpu=1\n"
BACK = "ifname=eth1\nirqs=32,33,34\nirq_cpus=0\nrestored=yes\n"


def test_a_good_answer_pins_the_probe_to_the_vcpu_it_named():
    placed = placement.parse_set(GOOD, 2)
    assert placed == placement.Placed("eth1", (32, 33, 34), 1, ("0-1", "0-1", "1"))
    assert placed.wrap(["iperf3", "-c", "x"]) == ["taskset", "-c", "1", "iperf3", "-c", "x"]
    assert placed.describe() == "eth1 interrupts 32,33,34 on vCPU 0, probe on vCPU 1"


@pytest.mark.parametrize("text, says", [
    ("error=interrupt 33 of eth1 cannot be moved (managed by the kernel?)\n", "cannot be moved"),
    ("", "named no interface"),
    (GOOD.replace("irq_cpus=0", "irq_cpus=0-1"), "on vCPUs '0-1', not 0 only"),
    (GOOD.replace("irq_cpus=0", "irq_cpus=0,1"), "irqbalance"),
    (GOOD.replace("probe_cpu=1", "probe_cpu=0"), "not one of 1..1"),
    (GOOD.replace("probe_cpu=1", "probe_cpu=2"), "not one of 1..1"),
    (GOOD.replace("probe_cpu=1", "probe_cpu=-1"), "not one of 1..1"),
    (GOOD.replace("probe_cpu=1\n", ""), "probe vCPU ''"),
    (GOOD.replace("irqs=32,33,34", "irqs=32;reboot"), "not a list of numbers"),
    (GOOD.replace("irqs=32,33,34", "irqs="), "not a list of numbers"),
    (GOOD.replace("irqs=32,33,34", "irqs=" + ",".join(["1"] * 65)), "not a list of numbers"),
    (GOOD.replace("ifname=eth1", "ifname=eth1;x"), "named no interface"),
    (GOOD.replace("was=0-1 0-1 1", "was=0-1 0-1"), "one vCPU list per interrupt"),
    (GOOD.replace("was=0-1 0-1 1", "was=0-1 0-1 $(reboot)"), "one vCPU list per interrupt"),
    (GOOD.replace("was=0-1 0-1 1\n", ""), "one vCPU list per interrupt"),
])
def test_an_answer_that_does_not_prove_the_layout_is_an_error(text, says):
    with pytest.raises(ProbeError, match=None) as exc:
        placement.parse_set(text, 2)
    assert says in str(exc.value) and "\n" not in str(exc.value)


def test_the_first_line_of_a_key_wins_and_other_lines_are_ignored():
    noisy = "motd: hello\nirqs=1;2\n" + GOOD + "probe_cpu=7\n"
    with pytest.raises(ProbeError, match="not a list of numbers"):
        placement.parse_set(noisy, 8)  # the first irqs= line, not the later good one
    assert placement.parse_set("banner\n" + GOOD + "probe_cpu=7\n", 8).probe_cpu == 1


def test_the_layout_is_read_back_after_the_run():
    placed = placement.parse_set(GOOD, 2)
    placement.check_held("ifname=eth1\nirqs=32,33,34\nirq_cpus=0\n", placed)
    with pytest.raises(ProbeError, match="irqbalance"):
        placement.check_held("ifname=eth1\nirqs=32,33,34\nirq_cpus=0,1\n", placed)
    with pytest.raises(ProbeError, match="changed during the run"):
        placement.check_held("ifname=eth1\nirqs=32,33\nirq_cpus=0\n", placed)
    with pytest.raises(ProbeError, match="could not be read back"):
        placement.check_held("error=no interface holds 10.213.0.10\n", placed)


# ---- the script itself, on a built sysfs/procfs ------------------------------------------------

def _tree(tmp: Path, cpus: int, msi: list[int] | None, legacy: int = 11,
          virtio: bool = True) -> dict[str, str]:
    pci = tmp / "sys/devices/pci0000:00/0000:00:03.0"
    dev = pci / "virtio1" if virtio else pci
    dev.mkdir(parents=True)
    (pci / "irq").write_text(f"{legacy}\n")
    for n in msi or []:
        (pci / "msi_irqs").mkdir(exist_ok=True)
        (pci / "msi_irqs" / str(n)).write_text("msix\n")
    for i, n in enumerate(msi or [legacy]):
        (tmp / "proc/irq" / str(n)).mkdir(parents=True)
        (tmp / "proc/irq" / str(n) / "smp_affinity_list").write_text(["0-1", "1", "0,2-3"][i % 3]
                                                                      + "\n")
    (tmp / "sys/class/net/eth1").mkdir(parents=True)
    (tmp / "sys/class/net/eth1/device").symlink_to(dev)
    bin_ = tmp / "bin"
    bin_.mkdir()
    (bin_ / "ip").write_text(f"#!/bin/sh\n[ \"$6\" = {GUEST_IP} ] && "
                             f"echo '3: eth1    inet {GUEST_IP}/24 brd x scope global eth1'\n")
    (bin_ / "getconf").write_text(f"#!/bin/sh\necho {cpus}\n")
    for f in ("ip", "getconf"):
        (bin_ / f).chmod(0o755)
    return dict(os.environ, PATH=f"{bin_}:{os.environ['PATH']}")


def _sh(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=30)


def test_the_script_moves_every_msi_vector_of_a_virtio_nic(tmp_path):
    env = _tree(tmp_path, 4, [34, 32, 33])
    out = _sh(placement.set_script(GUEST_IP, str(tmp_path / "sys"), str(tmp_path / "proc")), env)
    assert out.returncode == 0, out
    placed = placement.parse_set(out.stdout, 4)
    # msi_irqs listed 34, 32, 33 (that order in the tree): read back sorted, each with its own
    assert placed == placement.Placed("eth1", (32, 33, 34), 3, ("1", "0,2-3", "0-1"))
    irq = tmp_path / "proc/irq"
    for n in (32, 33, 34):
        assert (irq / f"{n}/smp_affinity_list").read_text().strip() == "0"
    back = _sh(placement.check_script(GUEST_IP, str(tmp_path / "sys"), str(tmp_path / "proc"))
               + placement.restore_script(placed, str(tmp_path / "proc")), env)
    placement.check_held(back.stdout, placed)
    placement.check_restored(back.stdout)
    assert [(irq / f"{n}/smp_affinity_list").read_text().strip() for n in (32, 33, 34)] == [
        "1", "0,2-3", "0-1"]  # the guest's own layout again, for its next workload
    out = _sh(placement.set_script(GUEST_IP, str(tmp_path / "sys"), str(tmp_path / "proc")), env)
    (irq / "33/smp_affinity_list").write_text("1\n")  # irqbalance moved one
    back = _sh(placement.check_script(GUEST_IP, str(tmp_path / "sys"), str(tmp_path / "proc")),
               env)
    with pytest.raises(ProbeError, match="irqbalance"):
        placement.check_held(back.stdout, placed)
    (irq / "33/smp_affinity_list").unlink()
    (irq / "33/smp_affinity_list").mkdir()  # cannot be written back
    back = _sh(placement.restore_script(placed, str(tmp_path / "proc")), env)
    with pytest.raises(ProbeError, match="could not be given back"):
        placement.check_restored(back.stdout)


def test_the_script_moves_the_legacy_line_of_an_emulated_nic(tmp_path):
    env = _tree(tmp_path, 2, None, legacy=11, virtio=False)
    out = _sh(placement.set_script(GUEST_IP, str(tmp_path / "sys"), str(tmp_path / "proc")), env)
    assert placement.parse_set(out.stdout, 2) == placement.Placed("eth1", (11,), 1, ("0-1",))
    assert (tmp_path / "proc/irq/11/smp_affinity_list").read_text().strip() == "0"


@pytest.mark.parametrize("case, says", [("one-vcpu", "the guest has 1 vCPU"),
                                        ("other-ip", "no interface holds"),
                                        ("read-only", "cannot be moved")])
def test_the_script_says_why_it_cannot_place(tmp_path, case, says):
    env = _tree(tmp_path, 1 if case == "one-vcpu" else 2, [32, 33])
    if case == "read-only":
        (tmp_path / "proc/irq/33/smp_affinity_list").unlink()
        (tmp_path / "proc/irq/33/smp_affinity_list").mkdir()  # a write fails, even as root
    ip = "10.213.0.99" if case == "other-ip" else GUEST_IP
    out = _sh(placement.set_script(ip, str(tmp_path / "sys"), str(tmp_path / "proc")), env)
    assert out.returncode == 3
    with pytest.raises(ProbeError, match=says):
        placement.parse_set(out.stdout, 2)


# ---- the iperf3 executor --------------------------------------------------------------------

class FakeGuest:
    name = "vbench-unit-9-v"

    def __init__(self, answers) -> None:
        self.answers, self.calls = answers, []

    def run(self, cmd, timeout, check=False):
        self.calls.append(cmd)
        kind = ("set" if "probe_cpu" in cmd else "back" if "irq_cpus" in cmd
                else "undo" if "restored" in cmd else "iperf3")
        got = self.answers[kind](len(self.calls))
        status, out = got if isinstance(got, tuple) else (0, got)
        return CommandResult(cmd, status, out, "", 0.1)

    def check_alive(self):
        if self.answers.get("dead"):
            raise GuestError(f"guest {self.name} is no longer running", "[ 9.0] panic")

    @contextlib.contextmanager
    def qemu_cpu(self, delay, length):
        class Rate:
            def rate(self):
                return None
        yield Rate()

    def test_ip(self):
        return GUEST_IP


class FakeHost:
    def peer_ip(self):
        return "10.213.0.1"

    @contextlib.contextmanager
    def peer(self, argv, port):
        yield None


class FakeUnit:
    variant, facts, scratch = "v", {}, None

    def __init__(self, g) -> None:
        self.g = g

    def guest(self, tool):
        return self.g

    def host(self):
        return FakeHost()


def _scenario(place: str):
    return load_scenario_text(
        "name: p\ndevice: nic\nguest: {vcpus: 2, memory_mib: 1024, machine: pc}\n"
        "variants: [{name: v, nic: {model: virtio}}]\n"
        f"workloads: [{{name: t, iperf3: {{directions: [h2g], placement: {place}}}}}]\n")


def test_iperf3_runs_pinned_between_the_layout_and_its_read_back():
    g = FakeGuest({"set": lambda n: GOOD, "back": lambda n: BACK, "iperf3": lambda n: IPERF3_JSON})
    scn = _scenario("split")
    samples, raw = IPERF3.run(scn, scn.workloads[0], FakeUnit(g))
    assert len(g.calls) == 3 and "probe_cpu" in g.calls[0] and "irq_cpus" in g.calls[2]
    client = g.calls[1].split()
    assert client[0] == "timeout" and client[client.index("taskset"):][:4] == [
        "taskset", "-c", "1", "iperf3"]
    assert "# placement: eth1 interrupts 32,33,34 on vCPU 0, probe on vCPU 1" in raw
    assert any(s.metric == "throughput" and s.value > 0 for s in samples)


def test_iperf3_is_not_measured_when_the_layout_moved_during_the_run():
    moved = BACK.replace("irq_cpus=0", "irq_cpus=0,1")
    g = FakeGuest({"set": lambda n: GOOD, "back": lambda n: moved,
                   "iperf3": lambda n: IPERF3_JSON})
    scn = _scenario("split")
    with pytest.raises(ProbeError, match="irqbalance"):
        IPERF3.run(scn, scn.workloads[0], FakeUnit(g))


def test_free_placement_touches_nothing_and_says_so():
    g = FakeGuest({"iperf3": lambda n: IPERF3_JSON})
    scn = _scenario("free")
    _, raw = IPERF3.run(scn, scn.workloads[0], FakeUnit(g))
    assert len(g.calls) == 1 and "taskset" not in g.calls[0]
    assert raw.startswith("### t-h2g\n# placement: free\n")


# ---- the report says it ---------------------------------------------------------------------

def _report_with(tmp_path, options: dict[str, object]) -> str:
    import json

    from vbench.report import build_report

    from ..helpers_runs import write_run

    run = write_run(tmp_path / "results", "20261207-060000-nic", kind="nic")
    meta = json.loads((run / "run.json").read_text())
    for name, w in meta["workloads"].items():
        w["options"] = dict(w.get("options") or {}, **options)
    (run / "run.json").write_text(json.dumps(meta))
    text = build_report([run], tmp_path / "r").read_text(encoding="utf-8")
    return text.split('class="strip"')[1].split("</div>")[0]


def test_the_context_strip_says_where_the_probe_ran(tmp_path):
    strip = _report_with(tmp_path / "a", {"placement": "split"})
    assert "probe placement" in strip
    assert "NIC interrupts on vCPU 0, probe on the last vCPU" in strip
    assert "where the guest put them" in _report_with(tmp_path / "b", {"placement": "free"})
    assert "probe placement" not in _report_with(tmp_path / "c", {})  # a run before placement
    hostile = _report_with(tmp_path / "d", {"placement": "<b>x</b>"})
    assert "unknown (&lt;b&gt;x&lt;/b&gt;)" in hostile and "<b>x</b>" not in hostile


def test_a_guest_that_cannot_answer_is_that_failure_not_a_placement_answer():
    """SSH broken: the command's own failure; the guest gone: the guest's (its console tail)."""
    scn = _scenario("split")
    broken = FakeGuest({"set": lambda n: (-1, ""), "iperf3": lambda n: IPERF3_JSON})
    with pytest.raises(RemoteCommandError):
        IPERF3.run(scn, scn.workloads[0], FakeUnit(broken))
    dead = FakeGuest({"set": lambda n: (-1, ""), "dead": True})
    with pytest.raises(GuestError, match="no longer running"):
        IPERF3.run(scn, scn.workloads[0], FakeUnit(dead))
    refused = FakeGuest({"set": lambda n: (3, "error=the guest has 1 vCPU\n")})
    with pytest.raises(ProbeError, match="the guest has 1 vCPU"):
        IPERF3.run(scn, scn.workloads[0], FakeUnit(refused))
    assert len(refused.calls) == 1  # iperf3 never started


def test_a_failed_iperf3_run_says_so_before_any_read_back():
    scn = _scenario("split")
    g = FakeGuest({"set": lambda n: GOOD, "back": lambda n: (-1, ""), "undo": lambda n: "",
                   "iperf3": lambda n: (1, "iperf3: error - unable to connect")})
    with pytest.raises(ProbeError, match="iperf3"):
        IPERF3.run(scn, scn.workloads[0], FakeUnit(g))
    assert not any("irq_cpus" in c and "probe_cpu" not in c for c in g.calls)
    assert "restored" in g.calls[-1]  # the layout was undone all the same


@pytest.mark.parametrize("bad", ["10.0.0.1; reboot", "$(reboot)", "", "::1"])
def test_the_scripts_take_only_an_ipv4_address(bad):
    for script in (placement.set_script, placement.check_script):
        with pytest.raises(ProbeError, match="not the guest's IPv4 address"):
            script(bad)
