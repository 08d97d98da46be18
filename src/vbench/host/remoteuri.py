"""What another host is (``qemu+ssh://`` URIs, its pinned keys, paths vbench may use on it)
and what vbench can run there so far. No network here: the session is :mod:`vbench.host.remote`.

The libvirt URI allow-list itself (:func:`check_uri`) is :mod:`vbench.host.uris`."""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from pathlib import Path, PurePosixPath

from vbench.core.errors import LabError
from vbench.host.libvirtd import DOMAIN_PREFIX
from vbench.host.uris import (Target, libvirt_uri, parse_uri, wrapper_path)


REMOTE_ROOT = PurePosixPath("/var/lib/libvirt/vbench")
_NAME_RE = re.compile("^" + re.escape(DOMAIN_PREFIX) + r"[A-Za-z0-9_.-]{1,120}$")
IMAGE_FILES = ("base", "kernel", "initrd")
COMPLETE = ".complete"


def known_hosts_file() -> Path:
    return Path(os.environ.get("VBENCH_KNOWN_HOSTS") or Path.home() / ".ssh" / "known_hosts")


def client_key_file() -> Path:
    env = os.environ.get("VBENCH_SSH_KEY")
    if env:
        return Path(env)
    for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
        p = Path.home() / ".ssh" / name
        if p.is_file():
            return p
    raise LabError("no SSH key to log in to the other host: set VBENCH_SSH_KEY or create "
                   "~/.ssh/id_ed25519 and authorize it there")


def pinned_host_keys(t: Target, known_hosts: Path) -> dict:
    """The keys known_hosts holds for the target ({key type: key}); refuses when there are none."""
    import paramiko

    try:
        hk = paramiko.HostKeys(str(known_hosts))
    except (OSError, paramiko.SSHException) as exc:
        raise LabError(f"cannot read known_hosts {known_hosts} ({exc}); vbench only connects to "
                       f"hosts whose key is pinned there") from None
    entry = hk.lookup(t.known_hosts_name)
    if not entry:
        raise LabError(f"{t.known_hosts_name} is not in {known_hosts}: vbench never accepts an "
                       f"unknown host key; check its fingerprint and add it (or set "
                       f"VBENCH_KNOWN_HOSTS)")
    return {kt: entry[kt] for kt in entry.keys()}


def ssh_wrapper(known_hosts: Path, key: Path, where: Path) -> Path:
    """The ``ssh`` command libvirt's ssh transport runs: host key pinned to the same file."""
    opts = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=20", "-i", str(key)]
    from vbench.core.paths import trusted_dir, write_file

    text = f"#!/bin/sh\nexec ssh {shlex.join(opts)} \"$@\"\n"
    where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    trusted_dir(where.parent)
    return write_file(where, text, 0o700)  # exclusive temporary file, renamed: no link followed


def pinned_libvirt_uri(uri: str) -> str:
    """The libvirt URI vbench opens for ``qemu+ssh://...``: the host key must be pinned in
    known_hosts (else one line), and libvirt's ssh runs through the pinned wrapper."""
    from vbench.core import paths

    t = parse_uri(uri)
    kh = known_hosts_file()
    pinned_host_keys(t, kh)
    wrapper = ssh_wrapper(kh, client_key_file(), wrapper_path(t, paths.lab_dir()))
    return libvirt_uri(t, wrapper)


def remote_path(*parts: str) -> PurePosixPath:
    """A path under REMOTE_ROOT; each part a plain name (no '/', '..', nothing a shell reads)."""
    for p in parts:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", p) or p in (".", ".."):
            raise LabError(f"refusing remote path part {p!r}")
    return REMOTE_ROOT.joinpath(*parts)


def _inside_root(p: PurePosixPath | Path) -> PurePosixPath:
    norm = PurePosixPath(posixpath.normpath(str(p)))
    if norm == REMOTE_ROOT or REMOTE_ROOT not in norm.parents:
        raise LabError(f"refusing a path outside {REMOTE_ROOT} on the other host: {p}")
    return norm


def scratch_argv(path: PurePosixPath, size_gib: float, mode: str) -> list[list[str]]:
    """Commands that create the raw backing file of a disk as make_scratch does locally
    (``full``: every block written once with random data, then fsynced)."""
    p = str(_inside_root(path))
    size = int(size_gib * 2**30)
    if mode == "full":
        return [["dd", "if=/dev/urandom", f"of={p}", "bs=1M", f"count={size >> 20}",
                 "iflag=fullblock", "conv=fsync", "status=none"], ["truncate", "-s", str(size), p]]
    if mode == "falloc":
        return [["fallocate", "-l", str(size), p]]
    return [["truncate", "-s", str(size), p]]


# ---- what a remote host supports so far --------------------------------------------------------

def unsupported(scn) -> list[str]:
    """Why ``scn`` cannot run on another host yet (empty: it can)."""
    from vbench.devices import Device

    why = []
    if scn.device not in ("disk", "nic"):
        why.append(f"device {scn.device}")
    for w in scn.workloads:
        if not w.kind.remote:
            why.append(f"workload {w.name} ({w.tool})")
    if getattr(scn.guest, "image_file", None) is not None:
        why.append("guest.image_file (your own image)")
    for v in scn.variants:
        prof = scn.profile(v)
        for dev, spec in prof.present():
            if dev.kind == "disk":
                if spec.bus == "nvme":
                    why.append(f"variant {v.name}: disk bus nvme")
            elif type(dev).prepare is not Device.prepare or dev.host_requirements(spec):
                why.append(f"variant {v.name}: device {dev.kind}")
    return list(dict.fromkeys(why))


def refuse_unsupported(scn, ab: bool = False) -> None:
    why = unsupported(scn) + (["vbench ab"] if ab else [])
    if why:
        raise LabError(f"{', '.join(why)}: not supported on a remote host yet (disk and NIC "
                       f"scenarios with fio, iperf3 and ping workloads are)")

