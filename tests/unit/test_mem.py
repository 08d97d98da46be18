"""virtio-mem against the balloon (device mem): XML, the balloon's place, check, and the workload
driving the device's requested size instead of the balloon."""

from __future__ import annotations

import os

import pytest

from vbench.run import executors
from vbench.workloads import balloon as balloon_workload
from vbench.devices import DEVICES
from vbench.devices.mem import MemSpec, current_kib, live_device, with_requested
from vbench.core.errors import GuestError, ProbeError
from vbench.run.executors import Target
from vbench.core.metrics import CommandResult
from vbench.scenario.schema import DeviceProfile, GuestSpec, load_scenario_text
from vbench.guest.verify import parse_facts

from .test_domain_xml import render
from .test_domain_xml_knobs import _root

MEM = DEVICES["mem"]


def test_virtio_mem_xml_replaces_the_balloon_and_plugs_the_device_at_boot():
    root = _root("mem-virtio-mem")
    balloons = root.findall("./devices/memballoon")
    assert [b.get("model") for b in balloons] == ["none"]  # one: the balloon device stepped aside
    t = root.find("./devices/memory[@model='virtio-mem']/target")
    assert (t.findtext("size"), t.findtext("requested"), t.findtext("block"), t.findtext("node")) == (
        "512", "512", "2", "0")
    assert root.find("./cpu/numa/cell").get("memory") == "512"  # boot memory: 1024 - 512
    assert root.find("memory").text == "1024" and root.find("maxMemory").get("slots") == "2"
    assert root.findtext("./os/cmdline").endswith(" memhp_default_state=online_movable")


def test_balloon_model_has_the_same_layout_and_a_virtio_balloon_only():
    root = _root("mem-balloon")
    assert [b.get("model") for b in root.findall("./devices/memballoon")] == ["virtio"]
    assert root.find("./devices/memory") is None
    assert root.find("./cpu/numa/cell").get("memory") == "1024"
    assert root.find("maxMemory") is not None
    assert "memhp_default_state" not in root.findtext("./os/cmdline")


def test_present_leaves_out_the_kind_a_present_device_replaces():
    kinds = [d.kind for d, _ in DeviceProfile(mem=MemSpec()).present()]
    assert "mem" in kinds and "balloon" not in kinds
    assert "balloon" in [d.kind for d, _ in DeviceProfile().present()]


def test_a_device_too_large_for_the_guest_is_refused():
    with pytest.raises(GuestError, match="leaves 0 MiB"):
        render(DeviceProfile(mem=MemSpec(size_mib=1024)), "qemu", spec=GuestSpec())


@pytest.mark.parametrize("model, bound, ok", [
    ("virtio-mem", "virtio_mem virtio_blk virtio_net", True),
    ("virtio-mem", "virtio_mem virtio_balloon virtio_blk", False),  # both ways at once
    ("virtio-mem", "virtio_balloon virtio_blk", False),
    ("balloon", "virtio_balloon virtio_blk", True),
    ("balloon", "virtio_blk", False),
])
def test_check_wants_exactly_the_models_driver(model, bound, ok):
    c = MEM.check(MemSpec(model=model), parse_facts(f"kernel=6.1.0\nbound_drivers={bound}\n"), None)
    assert c.ok is ok, c


SCN = """
name: unit-mem
device: mem
repetitions: 1
smoke: true
guest: {vcpus: 2, memory_mib: 1024, machine: pc}
variants:
  - {name: virtio-mem, mem: {model: virtio-mem, size_mib: 512}}
  - {name: balloon, mem: {model: balloon}}
workloads:
  - {name: give-back, balloon: {target_mib: TARGET, touch_mib: 100, timeout_s: 10}}
"""

LIVE = """<domain><devices>
    <memory model='virtio-mem'>
      <target>
        <size unit='KiB'>524288</size>
        <node>0</node>
        <block unit='KiB'>2048</block>
        <requested unit='KiB'>524288</requested>
        <current unit='KiB'>{cur}</current>
      </target>
      <alias name='virtiomem0'/>
    </memory>
    <memballoon model='none'/>
</devices></domain>"""


MEMINFO = "MemTotal:        {kib} kB\nMemFree:          1000 kB\n"


class FakeSsh:
    def __init__(self, guest):
        self.guest, self.calls = guest, []

    def run(self, cmd, timeout=None, check=False):
        self.calls.append(cmd)
        return CommandResult(cmd, 0, MEMINFO.format(kib=self.guest.plugged_kib + 512 * 1024), "", 0.1)


class FakeVmemGuest:
    name = "vbench-unit-mem"

    def __init__(self, spec: MemSpec):
        self.profile = DeviceProfile(mem=spec)
        self.plugged_kib = spec.size_mib * 1024
        self.requests: list[int] = []
        self.ssh = FakeSsh(self)
        self.dom = self

    def XMLDesc(self, flags=0):
        return LIVE.format(cur=self.plugged_kib)

    def qemu_pid(self):
        return os.getpid()

    def update_device_live(self, xml):
        kib = int(xml.split("<requested unit='KiB'>")[1].split("<")[0])
        assert "<alias name='virtiomem0'/>" in xml  # the live device, changed in place
        self.requests.append(kib)
        self.plugged_kib = kib

    def set_memory_kib(self, kib):  # the balloon: must not be used with virtio-mem
        raise AssertionError("the balloon was asked on a virtio-mem guest")


def test_balloon_workload_drives_virtio_mem_requested_size(monkeypatch):
    monkeypatch.setattr(balloon_workload.time, "sleep", lambda s: None)
    scn = load_scenario_text(SCN.replace("TARGET", "512"))
    g = FakeVmemGuest(MemSpec(size_mib=512))
    samples, log = executors.execute(scn, scn.workloads[0], Target("virtio-mem", g, {}))
    assert g.requests == [0, 512 * 1024]  # all of the device given back, then all of it again
    got = {s.metric: s.value for s in samples}
    assert 0 <= got["balloon_inflate_time"] < 1 and 0 <= got["balloon_deflate_time"] < 1
    assert got["guest_mem_before"] == 1024 and got["guest_mem_shrunk"] == 512
    assert got["guest_mem_after"] == 1024 and got["balloon_supported"] == 1.0
    assert "host_mem_returned" in got
    assert "virtio-mem requested 0 MiB (guest total 512 MiB)" in log
    assert "dd if=/dev/zero" in g.ssh.calls[0]  # the same touched-memory preparation


@pytest.mark.parametrize("target", [256, 1024, 513])
def test_unreachable_target_is_refused_before_anything_runs(target):
    scn = load_scenario_text(SCN.replace("TARGET", str(target)))
    g = FakeVmemGuest(MemSpec(size_mib=512, block_mib=2))
    with pytest.raises(ProbeError, match="cannot be reached with virtio-mem"):
        executors.execute(scn, scn.workloads[0], Target("virtio-mem", g, {}))
    assert g.ssh.calls == [] and g.requests == []


def test_kernel_options_per_model():
    assert set(MEM.kernel_options(MemSpec())) == {"CONFIG_VIRTIO_MEM"}
    assert set(MEM.kernel_options(MemSpec(model="balloon"))) == {"CONFIG_VIRTIO_BALLOON"}



def test_live_device_helpers():
    xml = LIVE.format(cur=0)
    dev = live_device(xml)
    assert dev.startswith("<memory model='virtio-mem'>") and "memballoon" not in dev
    assert current_kib(dev) == 0
    new = with_requested(dev, 262144)
    assert "<requested unit='KiB'>262144</requested>" in new and "<size unit='KiB'>524288</size>" in new
    with pytest.raises(GuestError, match="no virtio-mem device"):
        live_device("<domain><devices/></domain>")


def test_a_device_that_never_gets_there_times_out_naming_what_is_plugged():
    scn = load_scenario_text(SCN.replace("TARGET", "512").replace("timeout_s: 10", "timeout_s: 1"))
    g = FakeVmemGuest(MemSpec(size_mib=512))
    g.update_device_live = lambda xml: None  # the guest ignores the request
    with pytest.raises(GuestError, match="did not reach 0 MiB within 1 s .plugged: 524288 KiB"):
        executors.execute(scn, scn.workloads[0], Target("virtio-mem", g, {}))
