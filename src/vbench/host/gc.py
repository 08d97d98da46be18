"""``vbench lab gc``: remove what a killed vbench left behind.

After a SIGKILL nothing ran vbench's cleanup. Leftovers are found only through vbench's own
records, never by process name: domains carrying vbench's metadata tag whose creating vbench
process is gone, host-side peers recorded under the lab directory, and guest directories
(overlays, scratch disks) that belong to no running vbench domain.
"""

from __future__ import annotations

import json
import shutil

from vbench.host import lab, remote as remotehost
from vbench.core import paths, procs
from vbench.guest import domain as virt
from vbench.core.errors import LabError


def collect(connect: str | None = None, progress=print) -> list[str]:
    done: list[str] = []
    state = lab.LabState.load()
    far = remotehost.RemoteHost.open(connect) if connect and remotehost.is_remote(connect) else None
    uri = far.libvirt_uri if far is not None else (connect or state.uri)
    live_dirs: set[str] = set()
    try:
        conn = virt.open_connection(uri)
    except LabError:
        conn = None
    if conn is not None:
        try:
            for name in virt.destroy_tagged_domains(conn, orphans_only=True):
                done.append(f"destroyed orphaned guest {name}")
            for dom in conn.listAllDomains():
                tags = virt._tags(dom)
                if tags and tags.get("dir"):
                    live_dirs.add(tags["dir"])
        finally:
            conn.close()
    peers = paths.lab_dir() / "peers"
    if peers.is_dir():
        for rec in peers.glob("*.json"):
            try:
                ref = procs.ProcRef.from_dict(json.loads(rec.read_text()))
            except (OSError, ValueError, KeyError):
                rec.unlink(missing_ok=True)
                continue
            if procs.stop(ref, timeout=5):
                done.append(f"stopped host-side peer pid {ref.pid}")
            rec.unlink(missing_ok=True)
    if far is not None:  # another host: its guest directories, over the pinned session
        done += far.remove_leftovers(live_dirs)
        far.close()
    gd = paths.guests_dir()
    if gd.is_dir():
        for d in gd.iterdir():
            if not d.name.startswith(virt.DOMAIN_PREFIX) or str(d) in live_dirs:
                continue
            if virt.dir_owner_alive(d):
                continue  # a running vbench is using it
            shutil.rmtree(d, ignore_errors=True)
            done.append(f"removed leftover guest files {d}")
    for line in done:
        progress(line)
    return done
