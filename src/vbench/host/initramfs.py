"""Initramfs archives vbench writes itself: the accelerator probe's and a guest image's own.

A guest image whose recipe says ``initramfs: busybox`` boots with this instead of Debian's
initramfs-tools output. Debian's /init starts udev, triggers every device, waits for udev to
settle and runs its hook scripts before it mounts the root: 6 s of every boot under TCG (8-10 s
with two guests booting side by side), for a root that is always the same virtio-blk disk with
ext4. This one is a static busybox, the recipe's ``initramfs_modules`` and what they depend on
(``modules.dep`` of the image's kernel, loaded in dependency order with ``insmod``), and a
short /init: mount the root named by ``root=`` read-write or read-only as the kernel line says,
move /dev, /proc and /sys onto it and hand over to its init. udev on the root file system then
loads the drivers of the devices under test, as it did before.

Kernel-line words /init honours: ``root=`` (``LABEL=``, ``UUID=`` or a device path), ``rw`` /
``ro``, ``init=`` and ``break=top`` (stop in a shell before anything else, as initramfs-tools
does; vbench's boot-hang fault uses it). A root that does not appear within ROOT_WAIT_S, or a
mount that fails, prints a line with "Dropping to a shell" and stops in one (vbench.host.bootlog
reads that as the initramfs' emergency shell).
"""

from __future__ import annotations

import lzma
import re
from pathlib import Path

ROOT_WAIT_S = 30
MODULE_SUFFIX_RE = r"\.ko(\.[a-z0-9]+)?"  # a kernel module file, plain or compressed
MODULE_PATH_RE = r"[A-Za-z0-9_][A-Za-z0-9_.+/-]{0,250}" + MODULE_SUFFIX_RE  # relative, no spaces
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static (scripts/setup.sh installs it)
APPLETS = ("sh", "mount", "insmod", "findfs", "sleep", "cat", "echo", "switch_root", "mkdir")

INIT = """#!/bin/sh
# vbench's initramfs (vbench.host.initramfs): root disk modules, mount the root, hand over.
export PATH=/bin
mkdir -p /proc /sys /dev /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
shell() {
  echo "vbench-initramfs: $1: Dropping to a shell"
  PS1='(initramfs) ' exec sh -i </dev/console >/dev/console 2>&1
}
root=; mode=ro; init=/sbin/init; stop=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="${arg#root=}" ;;
    rw) mode=rw ;;
    ro) mode=ro ;;
    init=*) init="${arg#init=}" ;;
    break=top) stop=top ;;
  esac
done
[ "$stop" = top ] && shell "break=top"
echo "vbench-initramfs: loading the root disk's modules"
for m in $(cat /modules); do
  insmod "/lib/modules/$m" || echo "vbench-initramfs: insmod $m failed"
done
[ -n "$root" ] || shell "no root= on the kernel command line"
tries=0
while :; do
  case "$root" in
    LABEL=*|UUID=*) dev=$(findfs "$root" 2>/dev/null) ;;
    *) dev="$root" ;;
  esac
  [ -n "$dev" ] && [ -b "$dev" ] && break
  tries=$((tries + 1))
  [ "$tries" -ge @WAIT_TENTHS@ ] && shell "no root file system $root after @WAIT_S@ s"
  sleep 0.1
done
mount -o "$mode" "$dev" /root || shell "cannot mount $dev ($root) on /root"
[ -x "/root$init" ] || [ -L "/root$init" ] || shell "no $init on the root file system"
mount -o move /dev /root/dev
mount -o move /sys /root/sys
mount -o move /proc /root/proc
echo "vbench-initramfs: root $dev mounted $mode; starting $init"
exec switch_root /root "$init"
""".replace("@WAIT_TENTHS@", str(ROOT_WAIT_S * 10)).replace("@WAIT_S@", str(ROOT_WAIT_S))


def newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A cpio 'newc' archive (what the kernel unpacks as initramfs) from (name, mode, data);
    a symlink is mode 0o120777 with its target as data."""
    out = bytearray()
    ino = 1
    for name, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        nameb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nameb), 0))
        out += hdr.encode() + nameb
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
        ino += 1
    return bytes(out)


def static_busybox() -> bytes:
    """The host's static busybox; ValueError (a sentence saying what to install) otherwise."""
    if not BUSYBOX.exists():
        raise ValueError(f"{BUSYBOX} is missing: run `scripts/setup.sh` as root "
                         f"(apt-get install busybox-static)")
    data = BUSYBOX.read_bytes()
    if b"/ld-linux" in data[:4096]:  # an ELF interpreter: dynamically linked (Debian's `busybox`)
        # In an initramfs there is no libc: init would fail and the kernel panic.
        raise ValueError(f"{BUSYBOX} is dynamically linked; an initramfs needs a static one: "
                         f"apt-get install busybox-static")
    return data


def module_name(path: str) -> str:
    """``kernel/fs/ext4/ext4.ko`` -> ``ext4``; modprobe treats - and _ alike, so does this."""
    base = re.sub(MODULE_SUFFIX_RE + "$", "", path.rsplit("/", 1)[-1])
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """``modules.dep`` -> module name: (its path, the paths it depends on)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep and path.strip():
            for p in [path.strip(), *deps.split()]:
                if not re.fullmatch(MODULE_PATH_RE, p) or ".." in p.split("/"):
                    raise ValueError(f"modules.dep names {p[:80]!r}: not a module path under "
                                     f"the kernel's module directory")
            out[module_name(path.strip())] = (path.strip(), deps.split())
    return out


def load_order(dep: dict[str, tuple[str, list[str]]], builtin: set[str],
               names: list[str]) -> list[str]:
    """Module paths to insmod, every dependency before what needs it, each once; built-in
    modules need nothing. ValueError names a module the kernel has in neither form."""
    by_path = {path: name for name, (path, _) in dep.items()}
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in done or name in builtin:
            return
        if name in stack:
            raise ValueError(f"modules.dep has a dependency cycle: {' -> '.join(stack + (name,))}")
        if name not in dep:  # named as a dependency, without a line of its own
            raise ValueError(f"modules.dep: {stack[-1]} needs {name}, which it does not list")
        path, deps = dep[name]
        for d in deps:
            visit(by_path.get(d, module_name(d)), stack + (name,))
        done.add(name)
        order.append(path)

    for raw in names:
        name = raw.replace("-", "_")
        if name not in dep and name not in builtin:
            raise ValueError(f"initramfs_modules: the image's kernel has no module {raw!r}")
        visit(name, ())
    return order


def guest_initramfs(moddir: Path, names: list[str]) -> bytes:
    """The image's own initramfs: static busybox, ``names`` and their dependencies out of
    ``moddir`` (the image's /lib/modules/<release>), /init above. ValueError says what is wrong."""
    dep = parse_modules_dep((moddir / "modules.dep").read_text())
    builtin_file = moddir / "modules.builtin"
    builtin = ({module_name(p) for p in builtin_file.read_text().split()}
               if builtin_file.exists() else set())
    order = load_order(dep, builtin, names)
    entries: list[tuple[str, int, bytes]] = [("bin", 0o040755, b""),
                                             ("bin/busybox", 0o100755, static_busybox())]
    entries += [(f"bin/{a}", 0o120777, b"busybox") for a in APPLETS]
    entries += [("lib", 0o040755, b""), ("lib/modules", 0o040755, b"")]
    flat = []
    for path in order:
        data = (moddir / path).read_bytes()
        if path.endswith(".ko.xz"):
            data = lzma.decompress(data)
        elif not path.endswith(".ko"):
            raise ValueError(f"initramfs_modules: {path} is compressed in a form busybox insmod "
                             f"cannot read (only .ko and .ko.xz)")
        flat.append(f"{module_name(path)}.ko")
        entries.append((f"lib/modules/{flat[-1]}", 0o100644, data))
    entries.append(("modules", 0o100644, "".join(f"{m}\n" for m in flat).encode()))
    entries.append(("init", 0o100755, INIT.encode()))
    return newc(entries)
