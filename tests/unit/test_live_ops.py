"""Live operations belong to the device (issue 19): the balloon workload asks whichever device
manages the guest's memory for its MemoryControl (the balloon, virtio-mem) and never names a kind.
A toy device with its own live operation is one file plus one registration line, and the real
balloon executor drives it through the real run loop (fake guests at the seam)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vbench.core.errors import ProbeError
from vbench.run.executors import LiveGuest
from vbench.scenario.schema import load_scenario_text, parse_profile

from .toys import run_toy


def _guest(profile_text: str, **calls):
    log: list = []
    g = SimpleNamespace(name="g", profile=parse_profile(profile_text), log=log,
                        set_memory_kib=lambda kib: (log.append(("set", kib)), (True, "ok"))[1],
                        wait_balloon=lambda kib, t, s: (log.append(("wait", kib, s)), 0.5)[1])
    return g


def test_the_balloon_device_gives_memory_back_through_libvirt():
    scn = load_scenario_text("name: b\ndevice: balloon\nguest: {memory_mib: 1024}\n"
                             "variants: [{name: v, balloon: {model: virtio}}]\n"
                             "workloads: [{name: w, balloon: {target_mib: 512}}]\n")
    g = _guest("balloon=virtio")
    control = LiveGuest(g).memory_control(scn.guest.memory_mib, 512)
    assert control is not None
    assert control.give() == (True, "setMemory(524288 KiB): ok") and control.wait(True, 10) == 0.5
    assert control.take()[0]
    assert g.log == [("set", 524288), ("wait", 524288, True), ("set", 1048576)]


def test_virtio_mem_refuses_a_target_it_cannot_reach_with_one_line():
    scn = load_scenario_text("name: m\ndevice: mem\nguest: {memory_mib: 1024}\n"
                             "variants: [{name: v, mem: {model: virtio-mem, size_mib: 512}}]\n"
                             "workloads: [{name: w, balloon: {target_mib: 256, touch_mib: 0}}]\n")
    g = _guest("mem=virtio-mem")
    g.profile = scn.profile(scn.variants[0])
    with pytest.raises(ProbeError, match="cannot be reached with virtio-mem"):
        LiveGuest(g).memory_control(scn.guest.memory_mib, 256)


TOY_MODULE = '''
"""A throwaway device that manages guest memory its own way (a live operation)."""
from typing import Literal
from vbench.devices import Device, Fragment, Model, Strict
from vbench.devices.base import MemoryControl


class ToyMemSpec(Strict):
    model: Literal["virtio", "none"] = "virtio"


class ToyMem(Device):
    kind = "toymem"
    spec = ToyMemSpec
    replaces = "balloon"
    models = (Model("virtio", True, ("virtio_toymem",), {"CONFIG_VIRTIO_TOYMEM": "virtio_toymem"}),
              Model("none", False))
    headline_metrics = ()

    def xml(self, spec, ctx):
        return Fragment(devices="    <memballoon model='none'/>\\n")

    def memory_control(self, spec, guest, full_mib, target_mib):
        if spec.model == "none":
            return None
        def to(mib):
            guest.mem_kib = mib * 1024
            return True, f"toymem set {mib} MiB"
        return MemoryControl(give=lambda: to(target_mib), take=lambda: to(full_mib),
                             wait=lambda shrinking, timeout: 0.25)


DEVICE = ToyMem()
'''

DRIVER = """
from vbench.core.metrics import CommandResult


class MemGuest(FakeGuest):
    def __init__(self, name, profile):
        super().__init__(name)
        self.profile, self.mem_kib = profile, 1024 * 1024
        guest = self

        class Ssh:
            def run(self, cmd, timeout=None, check=False):
                return CommandResult(cmd, 0, f"MemTotal:       {guest.mem_kib} kB\\n", "", 0.0)

            def is_alive(self):
                return True

        self.ssh = Ssh()

    def qemu_pid(self):
        return None


class Guests:
    def boot(self, stack, v, index, rep, attempt=0, cancel=None):
        g = MemGuest(f"g-{v.name}", scn.profile(v))
        stack.callback(g.close)
        return Booted(Target(v.name, g, {"kernel": "6.1"}), [], "")

    def host(self, stack):
        return Target("host", None, {})


out = {}
for r in run(Guests()):
    out.setdefault(r["variant"], {})[r["metric"]] = float(r["value"])
"""

TOY_SCENARIO = """
name: toymem
device: toymem
repetitions: 3
guest: {memory_mib: 1024}
variants:
  - {name: live, toymem: {model: virtio}}
  - {name: without, toymem: {model: none}}
workloads:
  - {name: giveback, balloon: {target_mib: 512, touch_mib: 0}}
"""


def test_a_new_device_with_a_live_operation_is_one_file_and_one_line(tmp_path):
    out = run_toy(tmp_path, "toy_device", TOY_MODULE, DRIVER, TOY_SCENARIO)
    live = out["live"]
    assert live["guest_mem_before"] == 1024 and live["guest_mem_shrunk"] == 512
    assert live["guest_mem_after"] == 1024 and live["balloon_inflate_time"] == 0.25
    assert live["balloon_supported"] == 1.0
    assert "without" not in out  # no device gives memory back: the unit failed with one line
