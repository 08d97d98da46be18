"""What a recipe may say about its guest's boot: the modules its initramfs carries, the kernel
modules udev must never load, and the systemd generators that never run.

Under TCG every boot costs real time and a suite boots about sixty guests. Debian's default
initramfs (``MODULES=most``) is 36 MB: the kernel unpacks it and its udev loads and settles the
floppy, USB, IDE, mouse drivers before the root disk is mounted; after that, udev loads modules
nothing measures (cfg80211, kvm, pcspkr, powernow_k8). vbench's root disk is always virtio-blk
with ext4, so its guests need only those in the initramfs; every driver of a device *under test*
is still loaded by udev from the root file system. systemd runs each of its generators (about a
dozen programs, 0.2 s each under TCG) before it loads a unit; most find nothing to do in a guest
(no LUKS, dm-verity, GPT auto-mount, hibernation, SysV scripts) and a recipe may mask them. The
lists are data from a recipe: names only (allow-listed characters), written into the image as
configuration files or symlinks to /dev/null, never run.
"""

from __future__ import annotations

MODULE_NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,55}$"
INITRAMFS_CONF = "/etc/initramfs-tools/conf.d/vbench"
INITRAMFS_MODULES = "/etc/initramfs-tools/modules"
BLACKLIST_CONF = "/etc/modprobe.d/vbench-blacklist.conf"
GENERATOR_NAME_RE = r"^[a-z0-9][a-z0-9-]{0,60}-generator$"  # a file name in a generators directory
GENERATORS_DIR = "/etc/systemd/system-generators"  # systemd(1): a link to /dev/null masks one


def initramfs_files(modules: list[str]) -> dict[str, str]:
    """The initramfs-tools configuration for an initramfs with exactly ``modules`` (and what they
    depend on); empty when the recipe keeps Debian's default."""
    if not modules:
        return {}
    return {INITRAMFS_CONF: "# written by vbench from the image recipe (initramfs_modules)\n"
                            "MODULES=list\n",
            INITRAMFS_MODULES: "# written by vbench from the image recipe (initramfs_modules)\n"
                               + "".join(f"{m}\n" for m in modules)}


def blacklist_file(modules: list[str]) -> dict[str, str]:
    """A modprobe.d file that keeps udev from loading ``modules`` (an explicit modprobe still
    can); empty when the recipe names none."""
    if not modules:
        return {}
    return {BLACKLIST_CONF: "# written by vbench from the image recipe (blacklist_modules)\n"
                            + "".join(f"blacklist {m}\n" for m in modules)}


def generator_masks(names: list[str]) -> dict[str, str]:
    """Path in the image -> symlink target: each named generator masked (systemd runs a file of
    the same name in /etc instead of the one in /lib, and a link to /dev/null not at all)."""
    return {f"{GENERATORS_DIR}/{n}": "/dev/null" for n in names}
