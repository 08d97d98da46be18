"""The nested lab's hypervisor guest (L1): its domain, what it gets from this host, its setup.

L1 (recipe ``guests/hypervisor.yaml``: Debian's QEMU and libvirt) boots under the local lab with
``<cpu mode='custom'><model>EPYC</model><feature policy='require' name='svm'/></cpu>`` (QEMU's
TCG emulates SVM with nested paging), loads ``kvm_amd``, ``vhost_net`` and ``vhost_vsock``, and
runs the same vbench against its own lab. The orchestration (up, down, run) is :mod:`vbench.run.nested`.

What L1 gets from this host is shared read-only over virtio-9p, each directory at its own path:
the Python interpreter and the venv vbench runs from, vbench's package directory, the image
recipes, and the inner guest image (mounted where the inner vbench looks for it). 9p rather
than virtiofs: no virtiofsd process per share and no shared-memory backing for a 6 GiB TCG guest,
and nothing here is performance-critical (the inner guests' disks live on L1's own disk). The
shares are read-only at QEMU's side (``<readonly/>``), so L1 cannot write this host's files.
The L1 QEMU runs as root with libvirt's relabelling off for that domain only (a static DAC
label): the interpreter may live under /root (mode 0700), which the qemu user cannot traverse,
and libvirt must never chown the shared directories.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from xml.sax.saxutils import escape, quoteattr

RECIPE = "hypervisor"
DOMAIN = "vbench-nested-l1"
ROLE_TAG = "nested-lab"         # the `role` tag of the long-lived L1 (`lab up --nested`)
CPU_MODEL = "EPYC"              # an AMD model: TCG emulates SVM with nested paging (NPT)
CONSOLE_TAIL_BYTES = 1 << 18  # how much of L1's console its watch and its 'gone' reason read
MEMORY_MIB = 6144              # default; VBENCH_NESTED_MEMORY_MIB overrides (memory_mib())
MEMORY_RANGE_MIB = (2048, 262144)
VCPUS = 2
BOOT_TIMEOUT_S = 900            # L1 under TCG, on a loaded 2-core machine
INNER_ROOT = "/root/vbench-nested"  # in L1: the scenario copies and the inner results
INNER_IMAGES = "/var/lib/vbench/images"  # in L1: where the inner vbench (root) looks for images
NOTE = ("nested: the inner guests ran under KVM (kvm_amd) inside a hypervisor guest that itself "
        "ran under TCG with an emulated AMD CPU (SVM): KVM's code paths and exit structure at "
        "TCG's speed; never compare these numbers with a KVM host's, never pool them with flat runs")


# ---- what L1 gets from this host -----------------------------------------------------------------

@dataclass(frozen=True)
class Share:
    """A host directory shared read-only into L1 over 9p, mounted there at ``target``."""

    tag: str
    source: str
    target: str
    # The interpreter, the venv and the image do not change while L1 runs: L1 may cache them
    # (9p cache=loose; Python's imports over uncached 9p under TCG take a minute). vbench's own
    # package and the recipes are read through, so an edit shows in a long-lived nested lab.
    static: bool = False


def shares(inner_image_dir: Path) -> list[Share]:
    """The interpreter, the venv, vbench's package directory, the recipes (their text is the
    inner image's cache key) and the inner guest image; a directory inside another is not
    shared twice."""
    from vbench.host import images

    pkg_root = Path(__file__).resolve().parents[1]
    dirs = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), pkg_root,
            images.recipes_dir().resolve()]
    kept: list[Path] = []
    for d in dirs:
        if any(d == k or k in d.parents for k in kept):
            continue
        kept = [k for k in kept if d not in k.parents] + [d]
    static = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    out = [Share(f"vb{i}", str(d), str(d), d in static) for i, d in enumerate(kept)]
    img = inner_image_dir.resolve()
    out.append(Share(f"vb{len(out)}", str(img), f"{INNER_IMAGES}/{img.name}", True))
    return out


def _filesystem_xml(s: Share) -> str:
    return ("    <filesystem type='mount' accessmode='passthrough'>\n"
            f"      <source dir={quoteattr(s.source)}/>\n"
            f"      <target dir={quoteattr(s.tag)}/>\n"
            "      <readonly/>\n    </filesystem>\n")


def cpu_xml(outer_accel: str) -> str:
    """L1's CPU: under TCG a custom AMD model with SVM required (TCG cannot pass a host CPU
    through); under KVM (a real KVM host, where nesting is the host's business) passthrough."""
    if outer_accel == "kvm":
        return "  <cpu mode='host-passthrough'/>\n"
    return (f"  <cpu mode='custom' match='exact' check='none'>\n"
            f"    <model fallback='forbid'>{CPU_MODEL}</model>\n"
            f"    <feature policy='require' name='svm'/>\n  </cpu>\n")


def watch_l1(alive: Callable[[], None], console: Callable[[], str]) -> Callable[[], None]:
    """The hypervisor guest's watch while something runs in it: ``alive`` (GuestError once its
    domain is gone) and its kernel still sound (:func:`vbench.host.bootlog.wedged` on the last
    :data:`CONSOLE_TAIL_BYTES` of its console). Under TCG's emulated SVM its kernel has crashed
    and has locked up in KVM's vCPU threads while the domain stayed "running": that is an error
    at once, with the kernel's line, instead of an inner run waiting on a guest that never
    answers again."""
    from vbench.core.errors import GuestError
    from vbench.host import bootlog

    def watch() -> None:
        alive()
        line = bootlog.wedged(console())
        if line:
            raise GuestError(f"the hypervisor guest's kernel failed: {line!r}; nothing inside it "
                             f"can go on (`vbench lab down --nested` destroys it)")
    return watch


def gone(st: dict) -> str:
    """Why the recorded hypervisor guest is gone (vbench.host.bootlog.gone), in one line."""
    from vbench.core import qemulog
    from vbench.core.files import read_tail
    from vbench.host import bootlog

    log = read_tail(qemulog.QEMU_LOG.format(name=st["domain"]),
                    qemulog.TAIL_BYTES).decode(errors="replace")
    return (f"the hypervisor guest {st['domain']} is gone "
            f"{bootlog.gone(log, console(st), 'destroyed from outside?')}")


def console(st: dict, size: int = CONSOLE_TAIL_BYTES) -> str:
    """The end of the recorded hypervisor guest's console ("" when its directory is not ours)."""
    from vbench.core.files import read_tail
    from vbench.host import libvirtd

    gdir = libvirtd.owned_guest_dir(st.get("dir"))
    return read_tail(gdir / "console.log", size).decode(errors="replace") if gdir else ""


def memory_mib() -> int:
    """The hypervisor guest's memory: VBENCH_NESTED_MEMORY_MIB or the default, checked."""
    from vbench.core.errors import LabError

    raw = os.environ.get("VBENCH_NESTED_MEMORY_MIB", "").strip()
    if not raw:
        return MEMORY_MIB
    lo, hi = MEMORY_RANGE_MIB
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise LabError(f"VBENCH_NESTED_MEMORY_MIB={raw[:40]!r}: give a whole number of MiB from "
                       f"{lo} to {hi} (the hypervisor guest's memory), or unset it for {MEMORY_MIB}")
    return int(raw)


def l1_xml(name: str, domain_type: str, files: Any, cmdline: str, mgmt_net: str,
           tags: dict[str, str], share_list: list[Share], memory_mib: int | None = None,
           vcpus: int = VCPUS) -> str:
    """The hypervisor guest's domain XML (deterministic: pinned by a golden file)."""
    from vbench.guest.xml import VBENCH_NS, _check_names, mac_for
    from vbench.devices.nic import interface_xml

    _check_names(name, tags)
    memory_mib = memory_mib if memory_mib is not None else MEMORY_MIB
    meta = "".join(f"      <vbench:{k}>{escape(str(v))}</vbench:{k}>\n"
                   for k, v in sorted(tags.items()))
    return (
        f"<domain type='{domain_type}'>\n"
        f"  <name>{name}</name>\n"
        f"  <metadata>\n    <vbench:guest xmlns:vbench='{VBENCH_NS}'>\n{meta}    </vbench:guest>\n"
        f"  </metadata>\n"
        f"  <memory unit='MiB'>{memory_mib}</memory>\n"
        f"  <currentMemory unit='MiB'>{memory_mib}</currentMemory>\n"
        f"  <vcpu>{vcpus}</vcpu>\n"
        f"  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n"
        f"    <kernel>{escape(str(files.kernel))}</kernel>\n"
        f"    <initrd>{escape(str(files.initrd))}</initrd>\n"
        f"    <cmdline>{escape(cmdline)}</cmdline>\n  </os>\n"
        f"  <features>\n    <acpi/>\n    <apic/>\n  </features>\n"
        f"{cpu_xml('kvm' if domain_type == 'kvm' else 'tcg')}"
        f"  <clock offset='utc'/>\n"
        f"  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n"
        f"  <on_crash>destroy</on_crash>\n"
        f"  <devices>\n"
        "    <disk type='file' device='disk'>\n"
        "      <driver name='qemu' type='qcow2'/>\n"
        f"      <source file={quoteattr(str(files.overlay))}/>\n"
        "      <target dev='vda' bus='virtio'/>\n    </disk>\n"
        f"{interface_xml(mgmt_net, mac_for(name, 'mgmt'), 'virtio')}"
        f"{''.join(_filesystem_xml(s) for s in share_list)}"
        "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n"
        "    </rng>\n"
        f"    <serial type='file'>\n      <source path={quoteattr(str(files.console))}/>\n"
        f"      <target port='0'/>\n    </serial>\n"
        "    <panic model='isa'>\n      <address type='isa' iobase='0x505'/>\n    </panic>\n"
        f"  </devices>\n"
        # QEMU as root, no relabelling of this domain's files (see the module doc).
        "  <seclabel type='static' model='dac' relabel='no'>\n    <label>+0:+0</label>\n"
        "  </seclabel>\n"
        f"</domain>\n")


def hypervisor_guest_class():
    """virt.Guest whose domain is L1's (built on first use: virt imports libvirt-facing code)."""
    from vbench.guest import domain as virt

    @dataclass
    class HypervisorGuest(virt.Guest):
        share_list: list = field(default_factory=list)

        def build_xml(self) -> str:
            from vbench.guest.xml import kernel_cmdline
            from vbench.host.images import ROOT_LABEL
            from vbench.host.networks import MGMT

            tags = {"owner": "vbench", "dir": str(self.dir),
                    **owner_tags(self.tags.get("role"), self.lab.state.daemons), **self.tags}
            return l1_xml(self.name, self.accel.domain_type, self.files(),
                          kernel_cmdline(ROOT_LABEL, self.client_pub), MGMT.name, tags,
                          self.share_list, self.spec.memory_mib, self.spec.vcpus)

        def detach(self) -> None:
            """Leave the domain running (``lab up --nested``): close SSH and libvirt only."""
            if self.shell is not None:
                with contextlib.suppress(Exception):
                    self.shell.close()
                self.shell = None
            self.dom = None
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
                self.conn = None

    return HypervisorGuest


def owner_tags(role: str | None, lab_daemons: dict) -> dict[str, str]:
    """Whose life a hypervisor guest's domain is tied to, for ``lab gc`` (an orphan is a domain
    whose owner process is gone): for one booted for a run, this vbench process; for the one
    ``lab up --nested`` leaves running, the lab's libvirtd, which it cannot outlive anyway (so
    the lab's gc, whichever vbench runs it, never takes it for a killed run's leftover)."""
    from vbench.core import procs
    from vbench.host.libvirtd import owner_tag

    held = lab_daemons.get("libvirtd") if role == ROLE_TAG else None
    if not held:
        return owner_tag()
    return {**owner_tag(procs.ProcRef.from_dict(held)), "held_by": "libvirtd"}


# ---- inside L1 --------------------------------------------------------------------------------

def setup_script(share_list: list[Share]) -> str:
    """Run as root in L1 after boot: KVM, vhost, the shares; idempotent."""
    from vbench.host.accel import kvm_module_sh

    lines = ["set -e",
             "modprobe kvm_amd 2>/dev/null || modprobe kvm_intel",
             "modprobe vhost_net", "modprobe vhost_vsock",
             "test -c /dev/kvm && test -c /dev/vhost-net && test -c /dev/vhost-vsock"]
    for s in share_list:
        t = shlex.quote(s.target)
        cache = ",cache=loose" if s.static else ""
        lines.append(f"mkdir -p {t}; mountpoint -q {t} || mount -t 9p -o "
                     f"trans=virtio,version=9p2000.L,ro,msize=524288{cache} {s.tag} {t}")
    img = shlex.quote(share_list[-1].target)
    # The inner QEMU (user libvirt-qemu) reads the shared base image through its group, which has
    # the host's gid: give libvirt-qemu a group of that gid in L1 (L1 only).
    lines += [f"g=$(stat -c %g {img}/base.qcow2)",
              'n=$(getent group "$g" | cut -d: -f1)',
              'if [ -z "$n" ]; then groupadd -g "$g" vbench-img; n=vbench-img; fi',
              'id -nG libvirt-qemu | tr " " "\\n" | grep -qx "$n" || usermod -aG "$n" libvirt-qemu',
              f"mkdir -p {INNER_ROOT}/scenarios {INNER_ROOT}/results",
              f"echo kvm_module=$({kvm_module_sh()})",
              "echo kernel=$(uname -r)"]
    return "\n".join(lines) + "\n"


def inner_argv(args: list[str]) -> list[str]:
    """The inner vbench: this very interpreter and package, through the shares."""
    pkg_root = str(Path(__file__).resolve().parents[1])
    from vbench.host import images

    return ["env", f"PYTHONPATH={pkg_root}", f"VBENCH_GUESTS={images.recipes_dir().resolve()}",
            "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", sys.executable, "-c",
            "import sys; from vbench.commands import main; sys.exit(main())", *args]


def _client_key() -> tuple[Any, str, str]:
    """A fresh ed25519 client key: (paramiko key, public line, private key in OpenSSH PEM)."""
    import io

    import paramiko
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption()).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), pub, pem
