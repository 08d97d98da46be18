"""libvirt plumbing on the host: connections, networks, vbench's tag on domains, guest directories.

The only module that imports ``libvirt``. Domains are vbench's when they carry its metadata tag
(:data:`VBENCH_NS`); nothing here ever touches a domain without it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from vbench.core import paths, procs
from vbench.core.errors import LabError
from vbench.host.uris import check_opened_uri

if TYPE_CHECKING:  # pragma: no cover  (the types, for annotations elsewhere: guest.domain)
    from libvirt import virConnect, virDomain  # noqa: F401

VBENCH_NS = "https://vbench.invalid/xmlns/guest/1"  # vbench's libvirt metadata namespace (the tag)
DOMAIN_PREFIX = "vbench-"                            # every vbench domain and guest directory


# ---- libvirt connections, networks, tagged domains -------------------------------------------

def _libvirt(command: str = "booting guests"):
    """The libvirt module (every use of it goes through here); ``command``: what needs it, for
    the one line that names the extra to install when it is missing."""
    from vbench.core.extras import require_lab

    require_lab(command)
    import libvirt
    libvirt.registerErrorHandler(lambda *_: None, None)  # errors come as exceptions, not stderr
    return libvirt


def open_connection(uri: str):
    check_opened_uri(uri)  # whatever the caller: only allow-listed URIs reach libvirt
    libvirt = _libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LabError(f"cannot connect to libvirt at {uri} ({exc.get_error_message()}): "
                       f"run `vbench lab up`") from None


def libvirt_version(conn) -> str:
    v = conn.getLibVersion()
    return f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"


def supports_kvm(conn) -> bool:
    caps = conn.getCapabilities()
    return "<domain type='kvm'" in caps or '<domain type="kvm"' in caps


def network_active(conn, name: str) -> bool:
    libvirt = _libvirt()
    try:
        return bool(conn.networkLookupByName(name).isActive())
    except libvirt.libvirtError:
        return False


def daemon_facts(uri: str) -> dict[str, str]:
    """The facts a run records of the libvirt at ``uri``: its version, and whether firewall rules
    sit on the test network's path (vbench.host.networks.firewall_fact); "unknown" for what
    cannot be read."""
    from vbench.host.networks import TEST, firewall_fact, forward_mode

    try:
        conn = open_connection(uri)
    except LabError:
        return {"libvirt_version": "unknown", "test_network": "unknown"}
    try:
        xml = network_xml(conn, TEST.name)
        return {"libvirt_version": libvirt_version(conn),
                "test_network": firewall_fact(forward_mode(xml)) if xml else "unknown"}
    finally:
        conn.close()


def network_xml(conn, name: str) -> str | None:
    """The live XML of network ``name``; None when it is not defined, not active or cannot be
    read (an inactive network puts nothing on any path: its XML says nothing of the lab)."""
    libvirt = _libvirt()
    try:
        net = conn.networkLookupByName(name)
        return net.XMLDesc(0) if net.isActive() else None
    except libvirt.libvirtError:
        return None


def ensure_network(conn, name: str, xml: str) -> bool:
    """Start the (transient) network unless it is already active. True if started now."""
    libvirt = _libvirt()
    if network_active(conn, name):
        return False
    try:
        conn.networkCreateXML(xml)
    except libvirt.libvirtError as exc:
        raise LabError(f"cannot start libvirt network {name}: {exc.get_error_message()}") from None
    return True


def destroy_network(conn, name: str) -> bool:
    libvirt = _libvirt()
    try:
        net = conn.networkLookupByName(name)
    except libvirt.libvirtError:
        return False
    try:
        if net.isActive():
            net.destroy()
        if net.isPersistent():
            net.undefine()
    except libvirt.libvirtError:
        return False
    return True


def _tags(dom) -> dict | None:
    libvirt = _libvirt()
    try:
        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, VBENCH_NS)
    except libvirt.libvirtError:
        return None
    from xml.sax.saxutils import unescape

    return {k: unescape(v) for k, v in re.findall(r"<(?:\w+:)?(\w+)>([^<]*)</", xml)}


def tagged_domains(conn) -> list[str]:
    """Names of domains that carry vbench's metadata tag (and only those)."""
    out = []
    for dom in conn.listAllDomains():
        if _tags(dom) is not None:
            out.append(dom.name())
    return sorted(out)


def owner_tag(ref: procs.ProcRef | None = None) -> dict[str, str]:
    """The part of vbench's domain tag that ``owner_alive`` reads: the process the domain's life
    is tied to (``ref``; this vbench process by default), by pid and start time."""
    ref = ref or procs.ref(os.getpid())
    return {"pid": str(ref.pid if ref else os.getpid()),
            "pid_start": str(ref.starttime if ref else 0)}


def owner_alive(tags: dict) -> bool:
    """Whether the vbench process that created a tagged domain is still running."""
    try:
        return procs.alive(procs.ProcRef(int(tags.get("pid", 0)), int(tags.get("pid_start", -1))))
    except ValueError:
        return False


def destroy_tagged_domains(conn, run_id: str | None = None, orphans_only: bool = False) -> list[str]:
    """Destroy vbench's domains (optionally of one run, or only those whose vbench process is
    gone) and remove their files. Domains without vbench's tag are never touched."""
    libvirt = _libvirt()
    done = []
    for dom in conn.listAllDomains():
        tags = _tags(dom)
        if tags is None or (run_id and tags.get("run") != run_id):
            continue
        if orphans_only and owner_alive(tags):
            continue
        name = dom.name()
        try:
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefine()
        except libvirt.libvirtError:
            pass
        gdir = owned_guest_dir(tags.get("dir"))
        if gdir is not None:
            shutil.rmtree(gdir, ignore_errors=True)
        done.append(name)
    return done



def owned_guest_dir(tag: object) -> Path | None:
    """The guest directory a domain's ``dir`` tag names, if it is one of vbench's: a direct child
    of the guests directory named like vbench's domains, not a symlink. Anything else (``.../guests/..``,
    a path elsewhere, a planted link) is None: libvirt metadata is not trusted for deletions."""
    if not isinstance(tag, str) or not tag:
        return None
    p = Path(tag)
    gd = paths.guests_dir()
    if p.parent != gd or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", p.name) \
            or not p.name.startswith(DOMAIN_PREFIX) or p.is_symlink():
        return None
    if p.exists() and p.resolve().parent != gd.resolve():
        return None
    return p


def qemu_pid_by_name(name: str, proc: Path = Path("/proc")) -> int | None:
    """The pid of the QEMU process libvirt started for domain ``name`` (``-name guest=NAME,...``)."""
    want = f"guest={name},".encode()
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if argv and b"qemu" in argv[0] and any(
                a == want[:-1] or a.startswith(want) for a in argv):
            return int(d.name)
    return None


OWNER_FILE = "owner.json"


def claim_dir(d: Path) -> None:
    """Record which vbench process owns a guest/host directory (pid + start time)."""
    import json

    me = procs.ref(os.getpid(), "vbench")
    paths.write_file(d / OWNER_FILE, json.dumps(me.to_dict() if me else {}), 0o644)


def dir_owner_alive(d: Path) -> bool:
    import json

    try:
        return procs.alive(procs.ProcRef.from_dict(json.loads((d / OWNER_FILE).read_text())))
    except (OSError, ValueError, KeyError):
        return False


def remove_guest_dirs(done: list[str] | None = None) -> None:
    """Remove leftover guest directories (overlays, scratch disks) under VBENCH_HOME/guests."""
    gd = paths.guests_dir()
    if not gd.is_dir():
        return
    for d in gd.iterdir():
        if d.is_dir() and d.name.startswith(DOMAIN_PREFIX):
            shutil.rmtree(d, ignore_errors=True)
            if done is not None:
                done.append(f"removed leftover guest files {d}")
