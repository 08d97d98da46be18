"""A shared folder: a host directory shared into the guest over virtio-fs or 9p (virtio transport).

virtio-fs: libvirt starts ``virtiofsd`` (Debian ships it with QEMU as /usr/lib/qemu/virtiofsd) for
``<filesystem>`` with ``<driver type='virtiofs'/>``; vhost-user needs the guest RAM shared with it,
hence ``<memoryBacking>`` memfd + shared. 9p: QEMU's own 9p server, ``accessmode`` ``mapped``
(owners and modes kept in xattrs, QEMU runs as its usual user) or ``passthrough`` (host owners =
guest owners: QEMU must be able to chown, so that variant runs QEMU as root through a static DAC
``<seclabel>``; without it every chown fails with EPERM, as seen on this host).

Each guest gets an empty share ``share/`` in its own directory (removed with it). After boot the
facts script mounts it at :data:`MOUNT` by tag (virtiofs, or 9p2000.L over virtio with ``msize`` :data:`MSIZE`);
the fio workload then runs on :data:`FIO_FILE` in it. Both models are paravirtual: the question is
which shared-folder protocol, not virtio or emulated.
"""

from __future__ import annotations

import os
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

from pydantic import Field, model_validator

from vbench.devices.base import (Device, DomainFiles, DriverCheck, Fragment, GuestContext, Model,
                                 Strict)

TAG = "vbshare"
MOUNT = "/mnt/vbench-share"
FIO_FILE = f"{MOUNT}/vbench-fio.data"
SHARE_DIR = "share"
MSIZE = 524288  # 9p message size (the 6.1 default is 128 KiB; large I/O needs larger messages)


class FsSpec(Strict):
    model: Literal["virtiofs", "9p"] = "virtiofs"
    accessmode: Literal["mapped", "passthrough"] = Field(
        "passthrough", description="9p only: mapped (xattrs) or passthrough (host owners)")
    virtiofsd: str = Field("/usr/lib/qemu/virtiofsd", pattern=r"^/[A-Za-z0-9_./-]+$",
                           description="virtiofs only: the virtiofsd binary libvirt starts")

    @model_validator(mode="after")
    def _mode(self) -> "FsSpec":
        if self.model == "virtiofs" and self.accessmode != "passthrough":
            raise ValueError("accessmode: virtio-fs supports only passthrough (mapped is 9p's)")
        return self


def share_dir(files: DomainFiles) -> str:
    return str(files.dir / SHARE_DIR)


class Fs(Device):
    kind = "fs"
    spec = FsSpec
    models = (
        Model("virtiofs", True, ("virtiofs",), {"CONFIG_VIRTIO_FS": "virtiofs"}),
        Model("9p", True, ("9pnet_virtio",), {"CONFIG_NET_9P_VIRTIO": "9pnet_virtio",
                                              "CONFIG_9P_FS": "9p"}),
    )
    headline_metrics = ("iops", "create_rate", "stat_rate", "delete_rate")
    # Mount the share by tag with whatever transport the guest has bound (the check below then
    # proves it is the intended one); print what got mounted.
    facts_script = (r"""t=""
ls /sys/bus/virtio/drivers/virtiofs/virtio* >/dev/null 2>&1 && t=virtiofs
[ -z "$t" ] && ls /sys/bus/virtio/drivers/9pnet_virtio/virtio* >/dev/null 2>&1 && t=9p
if [ -n "$t" ] && ! grep -qs " """ + MOUNT + r""" " /proc/mounts; then
  mkdir -p """ + MOUNT + r"""
  if [ "$t" = virtiofs ]; then mount -t virtiofs """ + TAG + " " + MOUNT + r""" 2>/dev/null
  else mount -t 9p -o trans=virtio,version=9p2000.L,msize=""" + str(MSIZE) + " " + TAG + " " + MOUNT + r""" 2>/dev/null
  fi
fi
echo "fs_mount=$(grep -s " """ + MOUNT + r""" " /proc/mounts | cut -d' ' -f3 | head -n 1)"
""")

    def xml(self, spec: FsSpec, ctx: GuestContext) -> Fragment:
        assert ctx.files is not None
        src = quoteattr(share_dir(ctx.files))
        if spec.model == "virtiofs":
            return Fragment(
                domain=("  <memoryBacking>\n    <source type='memfd'/>\n"
                        "    <access mode='shared'/>\n  </memoryBacking>\n"),
                devices=(f"    <filesystem type='mount' accessmode='passthrough'>\n"
                         f"      <driver type='virtiofs' queue='1024'/>\n"
                         f"      <binary path={quoteattr(spec.virtiofsd)}/>\n"
                         f"      <source dir={src}/>\n      <target dir='{TAG}'/>\n"
                         f"    </filesystem>\n"))
        root = ("  <seclabel type='static' model='dac' relabel='no'>\n"
                "    <label>+0:+0</label>\n  </seclabel>\n") if spec.accessmode == "passthrough" else ""
        return Fragment(
            domain=root,
            devices=(f"    <filesystem type='mount' accessmode='{spec.accessmode}'>\n"
                     f"      <driver type='path'/>\n"
                     f"      <source dir={src}/>\n      <target dir='{TAG}'/>\n"
                     f"    </filesystem>\n"))

    def host_requirements(self, spec: FsSpec) -> tuple[tuple[str, str], ...]:
        return ((spec.virtiofsd, "virtiofs"),) if spec.model == "virtiofs" else ()

    def prepare(self, spec: FsSpec, files: DomainFiles) -> None:
        d = files.dir / SHARE_DIR
        d.mkdir()
        # mapped 9p writes as QEMU's own user; the guest directory around it stays root's 0755.
        os.chmod(d, 0o777)

    def parse_fact(self, key: str, value: str, facts: dict[str, Any]) -> bool:
        if key != "fs_mount":
            return False
        facts["fs_mount"] = value
        if value:
            facts["fio_file"] = FIO_FILE
            facts["fs_dir"] = MOUNT
        return True

    def check(self, spec: FsSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        base = super().check(spec, facts, ctx)
        mounted = facts.get("fs_mount", "")
        want_fs = "virtiofs" if spec.model == "virtiofs" else "9p"
        ok = base.ok and mounted == want_fs
        return DriverCheck(self.kind, spec.model, base.expected, base.found, ok,
                           f"{MOUNT} mounted as {mounted or 'nothing'}")


DEVICE = Fs()
