"""A guest image of "the user's", built by another path than vbench's own recipe (images.py).

vbench's recipe writes an ext4 file system without a partition table or bootloader and boots it
with direct kernel boot, its SSH key on the kernel command line. This image is what a user brings
instead: a partitioned disk (MBR, one ext4 partition) that boots with its own GRUB (grub-pc, its
boot code in the MBR and the gap after it, its modules and grub.cfg in /boot/grub), its own kernel
and initrd from /boot, and cloud-init (NoCloud) for SSH keys and network, with no key of any kind
baked in. Built with mmdebstrap from the host's apt sources, without loop devices or mounts:
``mke2fs -d -E offset=`` writes the partition in place, the GRUB stages are placed with ``dd``
exactly where ``grub-bios-setup`` puts them (boot.img in the MBR, core.img from sector 1, whose
first sector's block list ``grub-mkimage`` fills for that spot).

Cached under ``/var/lib/vbench/test-images/<name>-<key>/disk.qcow2`` (key: hash of this recipe);
``build.json`` beside it records how long the build took. Run as a script to build it by hand:
``python tests/ownimage.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("VBENCH_TEST_IMAGES", "/var/lib/vbench/test-images"))
NAME = "owndeb12"
LABEL = "owndeb-root"
SIZE_MIB = 3072
PART_START_SECTOR = 2048  # 1 MiB: the gap core.img goes into
PACKAGES = ["systemd-sysv", "udev", "linux-image-amd64", "initramfs-tools", "grub-pc",
            "cloud-init", "openssh-server", "fio", "iproute2", "ifupdown", "isc-dhcp-client",
            "kmod", "procps"]
GRUB_MODULES = ["biosdisk", "part_msdos", "ext2", "normal", "linux", "search", "search_label",
                "echo", "gzio", "configfile"]
GRUB_CFG = """set timeout=0
set default=0
search --no-floppy --label --set=root {label}
menuentry 'Debian (owndeb12)' {{
  linux /boot/vmlinuz-{release} root=LABEL={label} ro console=ttyS0,115200 quiet
  initrd /boot/initrd.img-{release}
}}
"""
CLOUD_CFG = """# owndeb12: only the NoCloud seed (a cidata disk), no network metadata services
datasource_list: [NoCloud, None]
"""
INTERFACES = """auto lo
iface lo inet loopback
source /etc/network/interfaces.d/*
"""


def recipe_key() -> str:
    text = json.dumps([PACKAGES, GRUB_MODULES, GRUB_CFG, CLOUD_CFG, INTERFACES, SIZE_MIB, 2])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_dir() -> Path:
    return ROOT / f"{NAME}-{recipe_key()}"


def cached() -> Path | None:
    disk = image_dir() / "disk.qcow2"
    return disk if disk.exists() and (image_dir() / "build.json").exists() else None


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    cp = subprocess.run(argv, capture_output=True, text=True, **kw)
    if cp.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({cp.returncode}): {(cp.stderr or cp.stdout)[-800:]}")
    return cp


def _customize(root: Path) -> str:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise RuntimeError("no kernel in /boot")
    release = kernels[-1].name[len("vmlinuz-"):]
    (root / "etc/fstab").write_text(f"LABEL={LABEL} / ext4 defaults,noatime 0 1\n")
    (root / "etc/hostname").write_text("owndeb12\n")
    (root / "etc/machine-id").write_text("")  # every boot of an overlay makes its own
    (root / "etc/network/interfaces").write_text(INTERFACES)
    (root / "etc/cloud/cloud.cfg.d/90-owndeb12.cfg").write_text(CLOUD_CFG)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # no host key in the image: cloud-init writes the seed's
    _run(["chroot", str(root), "passwd", "-l", "root"])
    grub = root / "boot/grub"
    grub.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root / "usr/lib/grub/i386-pc", grub / "i386-pc", dirs_exist_ok=True)
    (grub / "grub.cfg").write_text(GRUB_CFG.format(label=LABEL, release=release))
    for d in ("var/lib/apt/lists", "var/cache/apt"):
        shutil.rmtree(root / d, ignore_errors=True)
        (root / d).mkdir(parents=True)
    return release


def mbr_entry(start: int, sectors: int) -> bytes:
    """One MBR partition entry: bootable, Linux (0x83), LBA only (CHS fields saturated)."""
    import struct

    return struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", start, sectors)


def build(progress=print) -> Path:
    """Build (or reuse) the image; returns the qcow2's path."""
    hit = cached()
    if hit is not None:
        return hit
    t0 = time.monotonic()
    final = image_dir()
    work = ROOT / f".build-{NAME}-{recipe_key()}"
    # a root file system left by a build that failed later is reused (only the mmdebstrap step)
    root = work / "rootfs"
    done = work / "rootfs.done"
    if not done.exists():
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    steps: dict[str, float] = {}
    try:
        t = time.monotonic()
        if not done.exists():
            progress(f"ownimage: mmdebstrap {len(PACKAGES)} packages ...")
            _run(["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), "bookworm",
                  str(root)], timeout=1800)
            _customize(root)
            done.write_text("")
        steps["mmdebstrap+customize"] = time.monotonic() - t
        t = time.monotonic()
        release = sorted((root / "boot").glob("vmlinuz-*"))[-1].name[len("vmlinuz-"):]
        core = work / "core.img"
        _run(["chroot", str(root), "grub-mkimage", "-O", "i386-pc", "-o", "/tmp/core.img",
              "-p", "(hd0,msdos1)/boot/grub", *GRUB_MODULES])
        shutil.move(root / "tmp/core.img", core)
        boot_img = (root / "usr/lib/grub/i386-pc/boot.img").read_bytes()
        steps["grub-mkimage"] = time.monotonic() - t
        t = time.monotonic()
        raw = work / "disk.raw"
        with open(raw, "wb") as fh:
            fh.truncate(SIZE_MIB << 20)
        part_kib = SIZE_MIB * 1024 - PART_START_SECTOR // 2
        mbr = bytearray(512)
        mbr[446:462] = mbr_entry(PART_START_SECTOR, part_kib * 2)
        mbr[510:512] = b"\x55\xaa"
        _run(["mke2fs", "-q", "-t", "ext4", "-L", LABEL, "-d", str(root), "-F",
              "-E", f"offset={PART_START_SECTOR * 512}", str(raw), f"{part_kib}k"], timeout=600)
        core_bytes = core.read_bytes()
        if len(core_bytes) > (PART_START_SECTOR - 1) * 512:
            raise RuntimeError(f"core.img ({len(core_bytes)} bytes) does not fit before the partition")
        mbr[:440] = boot_img[:440]  # GRUB's boot code; the partition table and 0x55AA stay
        with open(raw, "r+b") as fh:
            fh.write(bytes(mbr))
            fh.seek(512)
            fh.write(core_bytes)
        steps["disk+grub"] = time.monotonic() - t
        t = time.monotonic()
        shutil.rmtree(root)
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "disk.qcow2")], timeout=600)
        raw.unlink()
        core.unlink()
        steps["qcow2"] = time.monotonic() - t
        total = time.monotonic() - t0
        (work / "build.json").write_text(json.dumps(
            {"name": NAME, "key": recipe_key(), "kernel_release": release, "packages": PACKAGES,
             "build_seconds": round(total, 1), "steps": {k: round(v, 1) for k, v in steps.items()},
             "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
        os.chmod(work, 0o755)
        os.chmod(work / "disk.qcow2", 0o644)
        if final.exists():
            shutil.rmtree(final)
        os.rename(work, final)
    except BaseException:
        if not done.exists():
            shutil.rmtree(work, ignore_errors=True)
        raise
    progress(f"ownimage: built {final} in {total:.0f} s ({steps})")
    return final / "disk.qcow2"


if __name__ == "__main__":
    p = build()
    print(p)
    print((p.parent / "build.json").read_text())
    sys.exit(0)
