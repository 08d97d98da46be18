"""Which hosts of a fleet share a machine, and so its CPUs: their identity keys.

A host's identity is a set of keys; two hosts whose sets share any key are taken to be one machine
(and are never measured at the same time). Erring towards "same machine" only costs time;
the other way round it would spoil both measurements.

- A libvirt on this machine (the lab, ``qemu:///system``, ``qemu+unix://...?socket=``): this
  machine's ``/etc/machine-id`` and boot id, and its host name.
- Any other URI: what its libvirt says: ``conn.getHostname()``, the host UUID of
  ``getCapabilities()`` and the system UUID of ``getSysinfo()`` (SMBIOS), when they answer.
  A URI that points back at this machine over SSH therefore still shares the host name key.
- What the hosts file declares (``machine: NAME``): for hosts these facts cannot tell apart, e.g.
  libvirtds in containers or namespaces of one machine with their own host names and no SMBIOS
  (libvirt then makes up a host UUID each time it starts).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Callable

from vbench.core.errors import UserError
from vbench.fleet.hosts import Host

Identity = frozenset[str]
_UUID = re.compile(r"<uuid>\s*([0-9a-fA-F-]{32,36})\s*</uuid>")
_SYS_UUID = re.compile(r"<entry name=['\"]uuid['\"]>\s*([0-9a-fA-F-]{32,36})\s*</entry>")
_ZERO = {"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"}


def _first_line(path: str) -> str:
    try:
        return Path(path).read_text().strip()[:64]
    except OSError:
        return ""


def this_machine() -> Identity:
    machine = _first_line("/etc/machine-id")
    boot = _first_line("/proc/sys/kernel/random/boot_id")
    keys = {f"hostname:{socket.gethostname().lower()}"}
    if machine or boot:
        keys.add(f"machine:{machine}:{boot}")
    return frozenset(keys)


def keys_from_libvirt(hostname: str, capabilities: str, sysinfo: str) -> Identity:
    """Identity keys from what a libvirt daemon says about its host."""
    keys = set()
    if hostname:
        keys.add(f"hostname:{hostname.strip().lower()}")
    for text, pattern in ((capabilities, _UUID), (sysinfo, _SYS_UUID)):
        m = pattern.search(text)
        if m and m.group(1).lower() not in _ZERO:
            keys.add(f"host-uuid:{m.group(1).lower()}")
    return frozenset(keys)


def ask_libvirt(uri: str) -> Identity:
    from vbench.host.libvirtd import _libvirt
    from vbench.host.remoteuri import pinned_libvirt_uri
    from vbench.host.uris import check_opened_uri, check_uri, is_remote

    check_uri(uri, "connect")
    opened = pinned_libvirt_uri(uri) if is_remote(uri) else uri  # never an unpinned host key
    check_opened_uri(opened)
    libvirt = _libvirt("identifying a fleet host")
    try:
        conn = libvirt.openReadOnly(opened)
    except libvirt.libvirtError as exc:
        raise UserError(f"cannot reach libvirt at {uri}: {exc.get_error_message()}") from None
    try:
        def call(fn: Callable[[], str]) -> str:
            try:
                return fn() or ""
            except libvirt.libvirtError:
                return ""
        keys = keys_from_libvirt(call(conn.getHostname), call(conn.getCapabilities),
                                 call(conn.getSysinfo))
    finally:
        conn.close()
    if not keys:
        raise UserError(f"libvirt at {uri} names neither its host nor a host UUID")
    return keys


def identify(host: Host) -> Identity:
    """The identity keys of one host (raises UserError when a remote libvirt does not answer),
    plus the machine the hosts file declares for it, if any."""
    keys = this_machine() if host.local else ask_libvirt(host.connect or "")
    return keys | {f"declared:{host.machine.lower()}"} if host.machine else keys
