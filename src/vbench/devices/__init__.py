"""The device kinds vbench can put under test: one module each, registered in one table.

Each module (``disk.py``, ``nic.py``, ``rng.py``, ``balloon.py``) owns everything about its kind:
the scenario spec, the models and which of them are paravirtual, the domain XML, the guest facts
and driver check, the guest kernel options and the report's headline metrics. The rest of vbench
reads them only through :data:`DEVICES`: ``scenario`` builds ``DeviceProfile``/``DeviceOverrides``,
the ``device:`` choices, presets and short profile keys from it, ``virt`` the domain XML,
``verify`` the facts script and checks, ``kconfig`` the needed kernel options.

How to add a device (say virtio-fs as ``fs``): write ``devices/fs.py`` with

- ``class FsSpec(Strict)``: its scenario section; the model field (``model`` unless you set
  ``model_field``) is a ``Literal`` of the model names, in the order of ``models``;
- ``class Fs(Device)``: ``kind = "fs"``, ``spec = FsSpec``, ``models =
  virtio_or_none("virtiofs", "CONFIG_VIRTIO_FS")`` (or a tuple of :class:`Model`, one per model:
  paravirtual or not, guest drivers, kernel options), ``headline_metrics``, and
  ``xml(spec, ctx) -> Fragment(devices=..., domain="<memoryBacking>...")``; override
  ``prepare`` for host files (in ``ctx.files.dir``), ``guest_rule``/``host_requirements`` for
  what it cannot run without, ``facts_script``/``parse_fact``/``check`` when the default check
  (the model's drivers bound to a virtio or PCI device) is not enough;
- ``DEVICE = Fs()`` at the end;

then add ``"fs"`` to :data:`MODULES` below. That is all the code: no other module changes. A
device that ships also gets its default gated metrics in :data:`vbench.core.policy.DEFAULT_GATE_METRICS`
(a kind without them is refused: it would gate nothing), a scenario and a README row. Leave
``presets`` empty unless the ``virtio``/``emulated`` presets should grow the device (that changes
their golden domain XML). ``tests/unit/test_devices.py`` shows a throwaway device end to end.
"""

from __future__ import annotations

from typing import Mapping

from vbench.core.registry import Registry
from vbench.devices.base import (Device, DomainFiles, DriverCheck, Fragment, GuestContext,
                                 HostProof, Model, Strict, hotplug_memory, is_q35, virtio_or_none)

# The registration table: one line per device module, in the order of the domain XML and reports.
MODULES = (
    "disk",
    "nic",
    "rng",
    "balloon",
    "vsock",
    "fs",
    "console",
    "pmem",
    "mem",
)

def _replaces_one_before(device: Device, before: Mapping[str, Device]) -> None:
    if device.replaces and device.replaces not in before:
        raise TypeError(f"device {device.kind} replaces {device.replaces!r}, which is not "
                        f"registered before it")


_REGISTRY: Registry[Device] = Registry("device", __name__, lambda d: d.kind, _replaces_one_before)
DEVICES: dict[str, Device] = _REGISTRY.kinds
# register: only before vbench.scenario.schema is imported (it builds its models once)
register = _REGISTRY.register
freeze = _REGISTRY.freeze


def option_modules() -> dict[str, str]:
    """Every kernel option a device model may need -> its module file name."""
    return {o: mod for d in DEVICES.values() for m in d.models for o, mod in m.kconfig.items()}


def missing_on_host(profiles, exists=None) -> list[str]:
    """What the given ``(variant name, profile)`` pairs need on this host that it lacks, as
    ``"variant: /dev/vhost-net (nic vhost)"`` items; empty when everything is there."""
    import os

    exists = exists or os.path.exists
    out = []
    for vname, prof in profiles:
        for dev, spec in prof.present():
            out += [f"{vname}: {path} ({dev.kind} {why})"
                    for path, why in dev.host_requirements(spec) if not exists(path)]
    return out


def headline_metrics() -> tuple[str, ...]:
    return tuple(m for d in DEVICES.values() for m in d.headline_metrics)


_REGISTRY.load(MODULES, "DEVICE")

__all__ = ["DEVICES", "Device", "DomainFiles", "DriverCheck", "Fragment", "GuestContext",
           "HostProof", "Model",
           "Strict", "virtio_or_none", "freeze", "is_q35", "missing_on_host", "headline_metrics", "option_modules", "register"]
