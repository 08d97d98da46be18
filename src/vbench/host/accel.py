"""The accelerator guests will use: KVM only when the guest kernel really boots under it (a test
boot, cached per kernel and QEMU), else TCG software emulation."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vbench.core import paths, procs
from vbench.core.errors import LabError
from vbench.core.files import atomic_write
from vbench.host import initramfs

if TYPE_CHECKING:  # pragma: no cover
    from vbench.host.lab import LabState

PROBE_TIMEOUT_S = 45
PROBE_MARKER = "VBENCH-PROBE-OK"
PROBE_VERSION = 2


@dataclass(frozen=True)
class Accelerator:
    name: str     # "kvm" or "tcg"
    reason: str
    cpu_mode: str = "host-passthrough"  # under KVM: host-passthrough, or "default" if that aborts

    @property
    def domain_type(self) -> str:
        return "kvm" if self.name == "kvm" else "qemu"


# The KVM modules a host may have loaded, in the order they are looked for, and the fact's word
# when none is: one home for this host (kvm_module) and for another machine's shell
# (kvm_module_sh: a remote host, the nested lab's hypervisor guest).
KVM_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm")
NO_KVM_MODULE = "none"


def kvm_module() -> str:
    """The first of KVM_MODULES this host has loaded, or NO_KVM_MODULE."""
    for mod in KVM_MODULES:
        if Path("/sys/module", mod).exists():
            return mod
    return NO_KVM_MODULE


def kvm_module_sh() -> str:
    """A POSIX sh command that prints what :func:`kvm_module` would on the machine it runs on:
    the module's name, or nothing when none is loaded (the caller's word for that is
    NO_KVM_MODULE)."""
    return (f"for m in {' '.join(KVM_MODULES)}; do [ -d /sys/module/$m ] && echo $m && break; "
            "done")


def probe_initramfs() -> bytes:
    try:
        data = initramfs.static_busybox()
    except ValueError as exc:
        # In the probe's initramfs there is no libc: init would fail, the kernel panic and QEMU
        # exit without the marker, which reads as "this KVM cannot boot the kernel".
        raise LabError(f"the accelerator probe needs a static busybox: {exc}") from None
    init = (f"#!/bin/busybox sh\n/bin/busybox echo {PROBE_MARKER}\n"
            "/bin/busybox poweroff -f\n").encode()
    return initramfs.newc([("bin", 0o040755, b""), ("bin/busybox", 0o100755, data),
                           ("init", 0o100755, init)])


def probe_accelerator(kernel: Path | None, conn_caps_kvm: bool, state: "LabState | None" = None,
                      timeout: int = PROBE_TIMEOUT_S) -> Accelerator:
    """Decide KVM or TCG by *booting* the guest kernel under KVM, not by looking at /dev/kvm.

    On this project's machines /dev/kvm exists but belongs to a nested hypervisor (kvm_pvm) that
    hangs stock kernels right after "Probing EDD"; only a real boot tells. Cached per kernel+QEMU.
    """
    if not Path("/dev/kvm").exists():
        return Accelerator("tcg", "no /dev/kvm on this host")
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as exc:
        return Accelerator("tcg", f"/dev/kvm cannot be opened ({exc.strerror})")
    if not conn_caps_kvm:
        return Accelerator("tcg", "libvirt does not offer domain type kvm on this host")
    if kernel is None:
        return Accelerator("tcg", "not probed yet (no guest kernel: run `vbench image build`); "
                                  "TCG until a KVM test boot succeeds")
    qemu_ver = procs.run(["qemu-system-x86_64", "--version"], timeout=10,
                         check=False).stdout.split("\n")[0]
    key = hashlib.sha256(f"probe-v{PROBE_VERSION}\n{qemu_ver}\n{kvm_module()}\n".encode()
                         + Path(kernel).read_bytes()).hexdigest()[:16]
    cache = paths.lab_dir() / "accelerator.json"
    try:
        a = json.loads(cache.read_text())
        if a.get("key") == key:
            return Accelerator(a["name"], a["reason"], a.get("cpu_mode", "host-passthrough"))
    except (OSError, ValueError):
        pass
    workdir = paths.lab_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = workdir / "probe-initrd.cpio"
    atomic_write(initrd, probe_initramfs())
    mod = kvm_module()
    attempts = []
    acc = None
    for cpu, mode in (("host", "host-passthrough"), ("qemu64", "default")):
        booted, took, res = _probe_boot(kernel, initrd, cpu, timeout)
        if booted:
            acc = Accelerator("kvm", f"a test boot of the guest kernel under KVM ({mod}, -cpu {cpu}) "
                                     f"finished in {took:.1f} s", mode)
            break
        if res.timed_out:
            attempts.append(f"-cpu {cpu}: no boot within {timeout} s")
            break  # the kernel hangs under this KVM (nested KVM that hangs stock kernels?)
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        attempts.append(f"-cpu {cpu}: QEMU failed ({last[-160:]})")
    if acc is None:
        acc = Accelerator("tcg", f"/dev/kvm is present ({mod}) but the guest kernel does not boot "
                                 f"under it: {'; '.join(attempts)}; using TCG software emulation")
    # Cached apart from the lab record, so that `lab down` does not throw a probe away.
    atomic_write(cache, json.dumps({"key": key, "name": acc.name, "reason": acc.reason,
                                    "cpu_mode": acc.cpu_mode}) + "\n")
    return acc


def _probe_boot(kernel: Path, initrd: Path, cpu: str, timeout: int):
    argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", cpu, "-m", "256", "-smp", "1",
            "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio", "-net", "none",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyS0 panic=-1 quiet rdinit=/init"]
    t0 = time.monotonic()
    res = procs.run(argv, timeout=timeout, check=False)
    return PROBE_MARKER in res.stdout, time.monotonic() - t0, res


def forced(override: str | None) -> Accelerator | None:
    """The accelerator ``--accel`` (or else VBENCH_ACCEL) forces, or None: probe."""
    env = override or os.environ.get("VBENCH_ACCEL")
    if env in ("kvm", "tcg"):
        return Accelerator(env, f"forced with {'--accel' if override else 'VBENCH_ACCEL'}={env}")
    return None


def local_accelerator(uri: str, kernel: Path | None, override: str | None = None,
                      state: "LabState | None" = None) -> Accelerator:
    """The accelerator of guests of the libvirt at ``uri`` on this machine (probing and caching
    as needed). Callers ask their lab's host: ``lab.host.accelerator(kernel, override)``."""
    from vbench.host import libvirtd

    if (acc := forced(override)) is not None:
        return acc
    conn = libvirtd.open_connection(uri)
    try:
        caps_kvm = libvirtd.supports_kvm(conn)
    finally:
        conn.close()
    return probe_accelerator(kernel, caps_kvm, state)
