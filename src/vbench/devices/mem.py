"""Giving memory back: virtio-mem against the virtio balloon, for the same guest size.

This device takes the memory balloon's place (``replaces = "balloon"``): a profile with ``mem``
gets its ``<memballoon>`` from here, so the two variants differ only in this section.

- ``virtio-mem``: the guest boots with ``memory_mib - size_mib`` and a virtio-mem device of
  ``size_mib`` fully plugged (``<requested>`` = size), so it starts with the same memory as the
  balloon guest; giving back N MiB lowers ``<requested>`` (libvirt ``updateDeviceFlags``), the
  guest offlines and unplugs whole blocks and QEMU discards them. No balloon (``<memballoon
  model='none'/>``). The hotplugged blocks must come online as movable memory, or the kernel
  cannot empty them again: kernel argument ``memhp_default_state=online_movable``.
- ``balloon``: ``<memballoon model='virtio'>`` with 1 s statistics, as the balloon scenario.

Both get the same memory hotplug layout (``<maxMemory>`` and one NUMA cell, which libvirt needs
for a ``<memory>`` device). The balloon workload drives either (``vbench.workloads.balloon``):
same touched-memory preparation, same facts (time to give back and take back, QEMU RSS, guest
MemTotal).
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from pydantic import Field

from vbench.core.errors import GuestError, ProbeError
from vbench.devices.balloon import balloon_control, memballoon_xml
from vbench.devices.base import (Device, DriverCheck, Fragment, GuestContext, MemoryControl, Model, Strict,
                                 hotplug_memory)

CMDLINE = " memhp_default_state=online_movable"


class MemSpec(Strict):
    model: Literal["virtio-mem", "balloon"] = "virtio-mem"
    size_mib: int = Field(512, ge=128, le=65536, multiple_of=128,
                          description="virtio-mem only: the device's size, plugged at boot and "
                                      "part of the guest's memory_mib (a multiple of the 128 MiB "
                                      "memory block)")
    block_mib: Literal[2, 4, 8, 16, 32, 64, 128] = Field(
        2, description="virtio-mem only: the device block size (the unit it plugs and unplugs)")


def boot_mib(spec: MemSpec, memory_mib: int) -> int:
    """The guest's boot memory: all of it with a balloon, the rest beside the virtio-mem device."""
    return memory_mib - spec.size_mib if spec.model == "virtio-mem" else memory_mib


def virtio_mem_xml(size_mib: int, block_mib: int, requested_mib: int) -> str:
    return ("    <memory model='virtio-mem'>\n      <target>\n"
            f"        <size unit='MiB'>{size_mib}</size>\n        <node>0</node>\n"
            f"        <block unit='MiB'>{block_mib}</block>\n"
            f"        <requested unit='MiB'>{requested_mib}</requested>\n"
            "      </target>\n    </memory>\n")


_LIVE_RE = re.compile(r"<memory model='virtio-mem'>.*?</memory>", re.S)


def live_device(domain_xml: str) -> str:
    """The ``<memory model='virtio-mem'>`` element of a running guest's XML (libvirt's XMLDesc)."""
    m = _LIVE_RE.search(domain_xml)
    if not m:
        raise GuestError("the guest has no virtio-mem device")
    return m.group(0)


def with_requested(device_xml: str, kib: int) -> str:
    """The device element asking for ``kib`` plugged (for libvirt's live device update)."""
    return re.sub(r"<requested unit='\w+'>\d+</requested>",
                  f"<requested unit='KiB'>{kib}</requested>", device_xml)


def current_kib(device_xml: str) -> int | None:
    """What the device has plugged now (libvirt's ``<current>``, updated from QEMU's events)."""
    m = re.search(r"<current unit='KiB'>(\d+)</current>", device_xml)
    return int(m.group(1)) if m else None


class Mem(Device):
    kind = "mem"
    spec = MemSpec
    replaces = "balloon"
    models = (
        Model("virtio-mem", True, ("virtio_mem",), {"CONFIG_VIRTIO_MEM": "virtio_mem"}),
        Model("balloon", True, ("virtio_balloon",), {"CONFIG_VIRTIO_BALLOON": "virtio_balloon"}),
    )
    headline_metrics = ()  # the balloon workload's: host_mem_returned (device balloon)

    def xml(self, spec: MemSpec, ctx: GuestContext) -> Fragment:
        boot = boot_mib(spec, ctx.memory_mib)
        if boot < 128:
            raise GuestError(f"mem: a {spec.size_mib} MiB virtio-mem device leaves {boot} MiB of "
                             f"the guest's {ctx.memory_mib} MiB to boot with; make memory_mib "
                             f"larger or size_mib smaller")
        layout = hotplug_memory(ctx, spec.size_mib, boot)
        if spec.model == "balloon":
            return layout + Fragment(devices=memballoon_xml("virtio"))
        return layout + Fragment(
            devices=virtio_mem_xml(spec.size_mib, spec.block_mib, spec.size_mib)
            + memballoon_xml("none"),
            cmdline=CMDLINE)

    def check(self, spec: MemSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        """The model's driver bound, the other one not (the guest must have exactly one way)."""
        bound = set(str(facts.get("bound_drivers", "")).split())
        found = "+".join(d for m in self.models for d in m.drivers if d in bound) or "none"
        want = "+".join(self.model(spec).drivers)
        return DriverCheck(self.kind, spec.model, want, found, found == want)

    def memory_control(self, spec: MemSpec, guest: Any, full_mib: int,
                       target_mib: int) -> MemoryControl:
        """virtio-mem: the device's ``<requested>`` size, then its ``<current>``. The guest keeps
        ``memory_mib - size_mib`` as boot memory, so reaching ``target_mib`` means plugging
        ``target_mib - boot`` of the device. The balloon model gives back through the balloon."""
        if spec.model != "virtio-mem":
            return balloon_control(guest, full_mib, target_mib)
        boot = full_mib - spec.size_mib
        low = target_mib - boot
        if not 0 <= low < spec.size_mib or low % spec.block_mib:
            raise ProbeError(f"target_mib {target_mib} cannot be reached with virtio-mem: the "
                             f"guest boots with {boot} MiB and the device holds {spec.size_mib} MiB "
                             f"in {spec.block_mib} MiB blocks (target_mib from {boot} to "
                             f"{full_mib - spec.block_mib}, in whole blocks)")

        def plug(mib: int) -> tuple[bool, str]:
            guest.update_device_live(with_requested(live_device(guest.dom.XMLDesc(0)), mib * 1024))
            return True, f"virtio-mem requested {mib} MiB (guest total {boot + mib} MiB)"

        def wait(shrinking: bool, timeout: float) -> float:
            kib, t0 = (low if shrinking else spec.size_mib) * 1024, time.monotonic()
            while (cur := current_kib(live_device(guest.dom.XMLDesc(0)))) != kib:
                if time.monotonic() - t0 > timeout:
                    raise GuestError(f"the virtio-mem device of {guest.name} did not reach "
                                     f"{kib // 1024} MiB within {timeout:.0f} s (plugged: {cur} KiB)")
                time.sleep(0.05)
            return time.monotonic() - t0

        return MemoryControl(give=lambda: plug(low), take=lambda: plug(spec.size_mib), wait=wait)


DEVICE = Mem()
