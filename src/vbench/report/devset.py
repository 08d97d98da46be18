"""The device set on the page: every device in a variant's guest besides the one under test, read
from the domain XML vbench defined for it (stored in the run record), never from a hand-kept list.

A reader of a report must see at a glance that, say, a management NIC, a USB controller and a
virtio-rng sat beside the NIC under test in every variant. Each ``<devices>`` element is given the
device kind it belongs to (the scratch disk and a virtio-scsi controller: ``disk``; the interface
on the test network: ``nic``; ...) or none (vbench's fixed part: boot disk, management NIC, serial
console, pvpanic); the elements of the variant's own kind are left out. What libvirt adds to every
guest without being asked is stated from the XML too: its default USB controller when the XML
names none, its default virtio balloon when the XML has no ``<memballoon>``.

The XML is untrusted (a run directory may come from someone else): it is size-bounded and parsed
without entities; one that cannot be read is said so, never shown as "no other devices".
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Iterable

from vbench.devices.disk import SCRATCH_SERIAL
from vbench.devices.pmem import SERIAL as PMEM_SERIAL
from vbench.host.networks import MGMT, TEST

MAX_XML_CHARS = 1 << 20

_DISK_BUS = {"virtio": "virtio-blk", "sata": "SATA", "ide": "IDE", "scsi": "SCSI", "usb": "USB"}
_NIC_MODEL = {"virtio": "virtio-net"}


class UnreadableXml(ValueError):
    pass


@dataclass(frozen=True)
class Item:
    kind: str    # the device kind it belongs to ("" : vbench's fixed part or libvirt's default)
    label: str


def _attr(el: ET.Element | None, name: str, default: str = "") -> str:
    return (el.get(name) if el is not None else None) or default


def _disk(el: ET.Element) -> Item:
    serial = (el.findtext("serial") or "").strip()
    bus = _attr(el.find("target"), "bus", "?")
    if el.get("device") == "cdrom":
        return Item("", f"CD-ROM on {_DISK_BUS.get(bus, bus)} (cloud-init seed)")
    if serial == SCRATCH_SERIAL:
        return Item("disk", f"scratch disk ({_DISK_BUS.get(bus, bus)})")
    if serial == PMEM_SERIAL:
        return Item("pmem", f"comparison disk ({_DISK_BUS.get(bus, bus)})")
    if not serial and _attr(el.find("target"), "dev") in ("vda", "sda", "hda"):
        return Item("", f"boot disk ({_DISK_BUS.get(bus, bus)})")
    return Item("", f"disk {serial or _attr(el.find('target'), 'dev', '?')} ({_DISK_BUS.get(bus, bus)})")


def _interface(el: ET.Element) -> Item:
    net = _attr(el.find("source"), "network") or _attr(el.find("source"), "bridge", "?")
    model = _attr(el.find("model"), "type", "?")
    name = _NIC_MODEL.get(model, model)
    if net == MGMT.name:
        return Item("", f"management NIC ({name} on {net})")
    if net == TEST.name:
        return Item("nic", f"NIC under test ({name} on {net})")
    return Item("", f"NIC ({name} on {net})")


def _item(el: ET.Element) -> Item | None:
    tag = el.tag
    if tag == "disk":
        return _disk(el)
    if tag == "interface":
        return _interface(el)
    if tag == "controller":
        kind, model = el.get("type", "?"), el.get("model", "")
        if kind == "scsi" and model == "virtio-scsi":
            return Item("disk", "virtio-scsi controller")
        if kind == "usb" and model == "none":
            return None
        return Item("", f"{kind} controller{f' ({model})' if model else ''}")
    if tag == "rng":
        return Item("rng", f"virtio-rng ({(el.findtext('backend') or '?').strip()})")
    if tag == "memballoon":
        model = el.get("model", "?")
        return None if model == "none" else Item("balloon", f"{model} balloon")
    if tag == "serial" and el.get("type") == "file":
        return Item("", "serial console (ISA UART, to a file)")
    if tag in ("serial", "channel", "console"):
        return Item("console", f"{tag} ({el.get('type', '?')})")
    if tag == "panic":
        return Item("", f"pvpanic ({el.get('model', '?')})")
    if tag == "filesystem":
        return Item("fs", f"shared folder ({_attr(el.find('driver'), 'type', 'virtio-9p')})")
    if tag == "vsock":
        return Item("vsock", "virtio-vsock")
    if tag == "memory":
        model = el.get("model", "?")
        return Item("mem" if model == "virtio-mem" else "pmem", model)
    if tag == "emulator":
        return None
    return Item("", f"{tag}{f' ({el.get(k)})' if (k := 'model') and el.get(k) else ''}")


def _parse(xml: str) -> ET.Element:
    if len(xml) > MAX_XML_CHARS or "<!ENTITY" in xml or "<!DOCTYPE" in xml:
        raise UnreadableXml("domain XML too large or with a DTD")
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise UnreadableXml(f"domain XML is not well-formed ({exc})") from None


def items(xml: str) -> list[Item]:
    """Every device of a domain XML, with libvirt's implicit ones; UnreadableXml if it cannot."""
    root = _parse(xml)
    devs = root.find("devices")
    if devs is None:
        raise UnreadableXml("domain XML without <devices>")
    found = [it for el in devs if (it := _item(el)) is not None]
    if not any(el.tag == "controller" and el.get("type") == "usb" for el in devs):
        machine = _attr(root.find("os/type"), "machine")
        usb = "PIIX3 UHCI" if machine in ("pc", "") or machine.startswith("pc-i440fx") else \
            "its default for the machine"
        found.append(Item("", f"USB controller ({usb}, libvirt's default)"))
    if devs.find("memballoon") is None:
        found.append(Item("balloon", "virtio balloon (libvirt's default)"))
    return found


def besides(xml: str, device: str) -> list[str]:
    """Labels of the devices in a guest besides those of the kind under test, in XML order."""
    return list(dict.fromkeys(it.label for it in items(xml) if it.kind != device))


@dataclass
class DeviceSet:
    common: list[str] = field(default_factory=list)             # in every variant
    extra: list[tuple[str, list[str]]] = field(default_factory=list)  # (variant, only in it)
    problems: list[str] = field(default_factory=list)           # variants whose XML is unreadable


def device_set(variants: Iterable[tuple[str, str, str]]) -> DeviceSet | None:
    """From (name, device kind, domain XML) of each guest variant: what every one of them also has
    and what only some have. None when no variant stored its XML."""
    per: list[tuple[str, list[str]]] = []
    out = DeviceSet()
    for name, device, xml in variants:
        if not xml:
            continue
        try:
            per.append((name, besides(xml, device)))
        except UnreadableXml as exc:
            out.problems.append(f"{name}: {exc}")
    if not per and not out.problems:
        return None
    if per:
        out.common = [x for x in per[0][1] if all(x in labels for _, labels in per[1:])]
        out.extra = [(n, [x for x in labels if x not in out.common]) for n, labels in per]
        out.extra = [(n, xs) for n, xs in out.extra if xs]
    return out
