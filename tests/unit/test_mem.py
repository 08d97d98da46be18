"""virtio-mem against the balloon (device mem): XML, the balloon's place, check, and the workload
driving the device's requested size instead of the balloon."""

from __future__ import annotations

import os

import pytest

from vbench import executors
from vbench.devices import DEVICES
from vbench.devices.mem import MemSpec
from vbench.errors import GuestError, ProbeError
from vbench.executors import Target
from vbench.model import CommandResult
from vbench.scenario import DeviceProfile, GuestSpec, load_scenario_text
from vbench.verify import parse_facts

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
guest: {vcpus: 2, memory_mib: 1024, machine: pc}
variants:
  - {name: virtio-mem, mem: {model: virtio-mem, size_mib: 512}}
  - {name: balloon, mem: {model: balloon}}
workloads:
  - {name: give-back, balloon: {target_mib: TARGET, touch_mib: 100, timeout_s: 10}}
"""

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

    def qemu_pid(self):
        return os.getpid()

    def set_virtio_mem_kib(self, kib):
        self.requests.append(kib)
        self.plugged_kib = kib

    def wait_virtio_mem(self, kib, timeout):
        assert self.plugged_kib == kib
        return 0.25

    def set_memory_kib(self, kib):  # the balloon: must not be used with virtio-mem
        raise AssertionError("the balloon was asked on a virtio-mem guest")


def test_balloon_workload_drives_virtio_mem_requested_size(monkeypatch):
    monkeypatch.setattr(executors.time, "sleep", lambda s: None)
    scn = load_scenario_text(SCN.replace("TARGET", "512"))
    g = FakeVmemGuest(MemSpec(size_mib=512))
    samples, log = executors.execute(scn, scn.workloads[0], Target("virtio-mem", g, {}))
    assert g.requests == [0, 512 * 1024]  # all of the device given back, then all of it again
    got = {s.metric: s.value for s in samples}
    assert got["balloon_inflate_time"] == 0.25 and got["balloon_deflate_time"] == 0.25
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


class FakeDom:
    def __init__(self, cur):
        self.cur, self.updates = cur, []

    def XMLDesc(self, flags=0):
        return LIVE.format(cur=self.cur)

    def updateDeviceFlags(self, xml, flags):
        self.updates.append((xml, flags))


def _guest(dom):
    """A Guest's virtio-mem methods on a fake live domain (no libvirt connection)."""
    from vbench import virt

    class G:
        name = "vbench-unit-mem"
        _VMEM_RE = virt.Guest._VMEM_RE
        set_virtio_mem_kib = virt.Guest.set_virtio_mem_kib
        virtio_mem_current_kib = virt.Guest.virtio_mem_current_kib
        wait_virtio_mem = virt.Guest.wait_virtio_mem

    g = G()
    g.dom = dom
    return g


def test_set_virtio_mem_changes_only_requested_of_the_live_device():
    pytest.importorskip("libvirt")
    dom = FakeDom(524288)
    _guest(dom).set_virtio_mem_kib(0)
    (xml, flags), = dom.updates
    assert "<requested unit='KiB'>0</requested>" in xml and "<alias name='virtiomem0'/>" in xml
    assert "<size unit='KiB'>524288</size>" in xml and "memballoon" not in xml
    assert flags == 1  # VIR_DOMAIN_AFFECT_LIVE


def test_wait_virtio_mem_reads_current_and_times_out_with_what_was_plugged():
    dom = FakeDom(0)
    g = _guest(dom)
    assert g.virtio_mem_current_kib() == 0
    assert g.wait_virtio_mem(0, 5) < 1
    with pytest.raises(GuestError, match="did not reach 512 MiB within 0 s .plugged: 0 KiB"):
        g.wait_virtio_mem(524288, 0.2)
