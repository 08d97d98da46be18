"""Guest images: declarative recipes under ``guests/``, built offline, cached by recipe hash.

A build runs mmdebstrap with the host's apt sources (no download from anywhere else), configures
the root file system (systemd-networkd on every NIC, sshd with a pinned host key and no passwords,
an early-boot getrandom timer, boot markers on the serial console), writes it into an ext4 image with ``mke2fs -d`` (no loop mounts)
and converts it to a qcow2 base. Kernel, initrd and kernel config are kept beside it for direct
kernel boot and for ``vbench guest check``. Guests never write the base: each gets an overlay.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vbench.core import paths
from vbench.core.errors import ImageError
from vbench.core.files import atomic_write
from vbench.host.bootlean import (GENERATOR_NAME_RE, MODULE_NAME_RE, blacklist_file,
                                  generator_masks, initramfs_files)
from vbench.host import initramfs, pvhboot
from vbench.host.guestfiles import (AUTHORIZED_KEYS_CMD, EARLY_RANDOM, EARLY_RANDOM_UNIT, NETWORKD,
                                    SSH_SERVICE_DROPIN, SSHD_CONFIG)
from vbench.host.bootlog import BOOT_MARK, BOOT_MARK_UNITS, boot_mark_unit
from vbench.core.untrusted import UntrustedInputError, load_yaml, read_text, shown

# Bump when the customisation code below changes what ends up in the image.
IMAGE_FORMAT = 8  # 5: boot markers on the serial console (vbench.host.bootlog); 6: vmlinux (pvhboot);
#   7: ssh.service without its `sshd -t` pre-check, generators masked (Recipe.mask_generators);
#   8: vbench's own busybox initramfs (Recipe.initramfs, vbench.host.initramfs)
ROOT_LABEL = "vbench-root"
MANIFEST = "manifest.json"


RECIPE_NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,47}$"
# Debian policy 5.6.1: package names; no paths (a local .deb runs its maintainer scripts as root),
# no version pins, no apt patterns.
DEB_PACKAGE_RE = r"^[a-z0-9][a-z0-9+.-]{1,62}$"
UNIT_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9:_.@-]{0,90}\.(service|timer|socket|target|mount|automount|path)$"
MMDEBSTRAP_VARIANTS = Literal["minbase", "essential", "apt", "required", "important", "standard"]


class Recipe(BaseModel):
    """A guest image recipe. Recipes may come from someone else: every field is allow-listed."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=RECIPE_NAME_RE)
    suite: str = Field(pattern=r"^[a-z]{2,20}$")
    variant: MMDEBSTRAP_VARIANTS = "minbase"
    size_gib: int = Field(3, ge=1, le=64)
    packages: list[Annotated[str, Field(pattern=DEB_PACKAGE_RE)]] = Field(max_length=200)
    mask: list[Annotated[str, Field(pattern=UNIT_NAME_RE)]] = Field(default_factory=list,
                                                                    max_length=100)
    # which initramfs guests boot with: Debian's (initramfs-tools) or vbench's own
    # (vbench.host.initramfs: static busybox, initramfs_modules, mount the root, hand over)
    initramfs: Literal["initramfs-tools", "busybox"] = "initramfs-tools"
    # vbench.host.bootlean: an initramfs with only these modules; modules udev never loads
    initramfs_modules: list[Annotated[str, Field(pattern=MODULE_NAME_RE)]] = Field(
        default_factory=list, max_length=50)
    blacklist_modules: list[Annotated[str, Field(pattern=MODULE_NAME_RE)]] = Field(
        default_factory=list, max_length=100)
    mask_generators: list[Annotated[str, Field(pattern=GENERATOR_NAME_RE)]] = Field(
        default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _busybox_needs_modules(self) -> "Recipe":
        if self.initramfs == "busybox" and not self.initramfs_modules:
            raise ValueError("initramfs busybox loads only initramfs_modules: name the root "
                             "disk's modules there (e.g. [virtio_pci, virtio_blk, ext4])")
        return self


@dataclass(frozen=True)
class Image:
    name: str
    dir: Path
    manifest: dict

    @property
    def base(self) -> Path:
        return self.dir / "base.qcow2"

    @property
    def kernel_boot(self) -> str:
        """How guests boot this image's kernel: "pvh" (the unpacked ELF, vbench.host.pvhboot) or
        "bzimage" (the packed kernel and its decompressor)."""
        return "pvh" if self.manifest.get("kernel_boot") == "pvh" else "bzimage"

    @property
    def kernel(self) -> Path:
        """The kernel file guests boot (direct kernel boot) and the accelerator probe tries."""
        return self.dir / ("vmlinux" if self.kernel_boot == "pvh" else "vmlinuz")

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def kernel_config(self) -> Path:
        return self.dir / "config"

    @property
    def host_key_pub(self) -> str:
        return (self.dir / "ssh_host_ed25519_key.pub").read_text().strip()

    @property
    def kernel_release(self) -> str:
        return self.manifest.get("kernel_release", "")

    def verify(self) -> None:
        """vbench's own cached image lives in its checked images directory; nothing to do."""

    @property
    def user(self) -> str:
        return "root"

    # What vbench.guest.domain.Guest asks of any image (a user's own: vbench.guest.userimage.UserImage)
    base_format = "qcow2"
    own_boot = False


def recipes_dir() -> Path:
    env = os.environ.get("VBENCH_GUESTS")
    if env:
        return Path(env)
    from vbench.core.shipped import find_dir

    found = find_dir("guests")  # ./guests, the checkout's, or the installed package's copy
    if found is not None:
        return found
    raise ImageError("no guests/ directory with image recipes found: run vbench from the project "
                     "directory or set VBENCH_GUESTS")


def load_recipe(name: str = "debian12") -> tuple[Recipe, str]:
    """The recipe ``guests/<name>.yaml`` and its cache key (hash of its text and the image format).

    Only a name is accepted, resolved inside the recipes directory: a scenario from someone else
    must not pick a file elsewhere (``../../x``, ``/tmp/x.yaml``). The recipe's own ``name`` must be
    its file name, so that one recipe cannot take (and prune) another recipe's images.
    """
    if not isinstance(name, str) or not re.match(RECIPE_NAME_RE, name):
        raise ImageError(f"image {shown(name)} is not a recipe name (lowercase letters, digits, "
                         f"'_', '-'); recipes live in guests/<name>.yaml")
    root = recipes_dir().resolve()
    path = root / f"{name}.yaml"
    if path.is_symlink() or not path.resolve().is_relative_to(root):
        raise ImageError(f"{path}: recipes must be plain files inside {root}")
    try:
        text = read_text(path)
    except (OSError, UntrustedInputError, UnicodeDecodeError):
        raise ImageError(f"no image recipe {path}: see guests/ for the recipes vbench ships") from None
    try:
        recipe = Recipe.model_validate(load_yaml(text))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ()))
        raise ImageError(f"{path}: invalid recipe: {where}: {err.get('msg', 'invalid')} "
                         f"(got {shown(err.get('input'))})") from None
    except (yaml.YAMLError, UntrustedInputError) as exc:
        raise ImageError(f"{path}: invalid recipe: {str(exc).splitlines()[0][:200]}") from None
    if recipe.name != name:
        raise ImageError(f"{path}: the recipe is named {recipe.name!r}; a recipe's name must be "
                         f"its file name ({name!r})")
    key = hashlib.sha256(f"format={IMAGE_FORMAT}\n{text}".encode()).hexdigest()[:12]
    return recipe, key


def image_dir(recipe: Recipe, key: str) -> Path:
    return paths.images_dir() / f"{recipe.name}-{key}"


def find(name: str = "debian12") -> Image | None:
    recipe, key = load_recipe(name)
    d = image_dir(recipe, key)
    man = d / MANIFEST
    if not man.exists():
        return None
    try:
        manifest = json.loads(man.read_text())
    except (OSError, ValueError):
        return None
    img = Image(recipe.name, d, manifest)
    if not all(p.exists() for p in (img.base, img.kernel, img.initrd)):
        return None
    return img


def find_default() -> Image | None:
    try:
        return find("debian12")
    except ImageError:
        return None


def require(name: str = "default") -> Image:
    img = find("debian12" if name == "default" else name)
    if img is None:
        raise ImageError(f"guest image {name!r} is not built: run `vbench image build`")
    return img


# ---- building --------------------------------------------------------------------------------

def _run(argv: list[str], progress, what: str, timeout: int = 1800, cwd=None) -> str:
    """Run a build step, streaming its output as live lines; a failure is one clear line."""
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=cwd)
    except FileNotFoundError:
        raise ImageError(f"{argv[0]} is not installed: run `scripts/setup.sh` as root") from None
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith(("I: ", "E: ", "W: ")) and progress:
            progress(f"  {what}: {line.rstrip()[3:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise ImageError(f"{what} took longer than {timeout} s; giving up")
    rc = proc.wait()
    if rc != 0:
        tail = " | ".join(lines[-3:])
        raise ImageError(f"{what} failed (exit {rc}): {tail}")
    return "\n".join(lines)


def _keypair_files(prefix: Path, comment: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH)
    paths.write_file(prefix, priv, 0o600)
    paths.write_file(Path(str(prefix) + ".pub"), pub.decode() + f" {comment}\n", 0o644)


def _customize(root: Path, recipe: Recipe, host_key: Path, progress) -> None:
    def write(rel: str, text: str, mode: int = 0o644) -> None:
        p = root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.chmod(p, mode)

    write("/etc/hostname", "vbench-guest\n")
    write("/etc/hosts", "127.0.0.1 localhost\n127.0.1.1 vbench-guest\n")
    write("/etc/fstab", f"LABEL={ROOT_LABEL} / ext4 defaults,noatime 0 1\n")
    # An empty machine-id makes every boot of a fresh overlay generate its own: guests must not
    # share DHCP identities.
    write("/etc/machine-id", "")
    write("/etc/systemd/network/10-vbench.network", NETWORKD)
    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    shutil.copy(host_key, root / "etc/ssh/ssh_host_ed25519_key")
    os.chmod(root / "etc/ssh/ssh_host_ed25519_key", 0o600)
    shutil.copy(str(host_key) + ".pub", root / "etc/ssh/ssh_host_ed25519_key.pub")
    write("/etc/ssh/sshd_config.d/vbench.conf", SSHD_CONFIG)
    write("/etc/systemd/system/ssh.service.d/vbench.conf", SSH_SERVICE_DROPIN)
    write("/usr/local/sbin/vbench-authorized-keys", AUTHORIZED_KEYS_CMD, 0o755)
    write("/usr/local/sbin/vbench-early-random", EARLY_RANDOM, 0o755)
    write("/etc/systemd/system/vbench-early-random.service", EARLY_RANDOM_UNIT)
    write("/usr/local/sbin/vbench-boot-mark", BOOT_MARK, 0o755)
    marks = [f"vbench-boot-{stage}.service" for stage in BOOT_MARK_UNITS]
    for stage, unit in zip(BOOT_MARK_UNITS, marks):
        write(f"/etc/systemd/system/{unit}", boot_mark_unit(stage))
    chroot = ["chroot", str(root)]
    _run(chroot + ["systemctl", "enable", "systemd-networkd.service", "vbench-early-random.service",
                   *marks], progress, "enable units", timeout=120)
    if recipe.mask:
        _run(chroot + ["systemctl", "mask", *recipe.mask], progress, "mask units", timeout=120)
    for rel, target in generator_masks(recipe.mask_generators).items():
        link = root / rel.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    debian_initramfs = recipe.initramfs == "initramfs-tools"
    lean = {**(initramfs_files(recipe.initramfs_modules) if debian_initramfs else {}),
            **blacklist_file(recipe.blacklist_modules)}
    for rel, text in lean.items():
        write(rel, text)
    if lean and debian_initramfs:  # the kernel package built it before: again, configured
        _run(chroot + ["update-initramfs", "-u", "-k", "all"], progress, "update-initramfs",
             timeout=600)
    _run(chroot + ["passwd", "-l", "root"], progress, "lock root password", timeout=60)
    # Keep the image small: apt lists and caches are not needed inside guests.
    for d in ("var/lib/apt/lists", "var/cache/apt"):
        shutil.rmtree(root / d, ignore_errors=True)
        (root / d).mkdir(parents=True, exist_ok=True)


def _check_can_build(size_gib: int) -> None:
    """ImageError unless this process is root and the images directory has room for the build."""
    if os.geteuid() != 0:
        raise ImageError("building an image needs root (mmdebstrap, chroot): run as root")
    paths.images_dir().mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(paths.images_dir()).free / 2**30
    need = size_gib + 3
    if free < need:
        raise ImageError(f"not enough free disk in {paths.images_dir()}: {free:.1f} GiB free, about "
                         f"{need} GiB needed; free space or set VBENCH_HOME elsewhere")


def _copy_boot_files(root: Path, work: Path, recipe: Recipe) -> tuple[str, str]:
    """Copy the newest kernel of ``root``, its initrd (or vbench's own, Recipe.initramfs),
    config and module lists into ``work``, and unpack the kernel for PVH boot where it can be;
    returns the kernel release and how guests boot it (Image.kernel_boot)."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ImageError("the image has no kernel in /boot (is linux-image-amd64 in the recipe?)")
    release = kernels[-1].name[len("vmlinuz-"):]
    shutil.copy(kernels[-1], work / "vmlinuz")
    if recipe.initramfs == "busybox":
        _own_initramfs(root / "lib/modules" / release, recipe, work / "initrd.img")
    else:
        shutil.copy(root / "boot" / f"initrd.img-{release}", work / "initrd.img")
    if (root / "boot" / f"config-{release}").exists():
        shutil.copy(root / "boot" / f"config-{release}", work / "config")
    for listing in ("modules.builtin", "modules.order"):
        if (root / "lib/modules" / release / listing).exists():
            shutil.copy(root / "lib/modules" / release / listing, work / listing)
    return release, ("pvh" if pvhboot.unpack(work / "vmlinuz", work / "vmlinux") else "bzimage")


def _own_initramfs(moddir: Path, recipe: Recipe, out: Path) -> None:
    try:
        paths.write_file(out, initramfs.guest_initramfs(moddir, recipe.initramfs_modules), 0o644)
    except (ValueError, OSError) as exc:
        raise ImageError(f"recipe {recipe.name}: cannot write its busybox initramfs: {exc}") from None


def build(name: str = "debian12", force: bool = False, progress=print) -> tuple[Image, bool, float]:
    """Build (or reuse) an image; returns (image, built_now, seconds)."""
    t0 = time.monotonic()
    recipe, key = load_recipe(name)
    final = image_dir(recipe, key)
    if not force:
        existing = find(name)
        if existing is not None:
            return existing, False, time.monotonic() - t0
    _check_can_build(recipe.size_gib)
    work = paths.images_dir() / f".build-{recipe.name}-{key}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        root = work / "rootfs"
        progress(f"building image {recipe.name} ({recipe.suite}, {len(recipe.packages)} packages) "
                 f"with mmdebstrap from the host's apt sources ...")
        _run(["mmdebstrap", f"--variant={recipe.variant}", "--include=" + ",".join(recipe.packages),
              recipe.suite, str(root)], progress, "mmdebstrap")
        _keypair_files(work / "ssh_host_ed25519_key", "vbench-guest-hostkey")
        _customize(root, recipe, work / "ssh_host_ed25519_key", progress)
        release, kernel_boot = _copy_boot_files(root, work, recipe)
        pkgs = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package}=${Version}\n"],
                              capture_output=True, text=True).stdout.split()
        progress("writing ext4 file system and qcow2 base image ...")
        raw = work / "disk.raw"
        _run(["mke2fs", "-q", "-t", "ext4", "-L", ROOT_LABEL, "-d", str(root), "-F", str(raw),
              f"{recipe.size_gib}G"], progress, "mke2fs", timeout=600)
        shutil.rmtree(root)
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "base.qcow2")], progress,
             "qemu-img convert", timeout=600)
        raw.unlink()
        for p in work.iterdir():  # the qemu user only reads these; directory traversal must work
            os.chmod(p, 0o600 if p.name == "ssh_host_ed25519_key" else 0o644)
        restrict_base(work / "base.qcow2")
        os.chmod(work, 0o755)
        manifest = {"schema_version": 1, "recipe": recipe.model_dump(), "key": key,
                    "image_format": IMAGE_FORMAT, "kernel_release": release,
                    "kernel_boot": kernel_boot,
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "build_seconds": round(time.monotonic() - t0, 1), "packages": pkgs}
        atomic_write(work / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _prune_superseded(recipe.name, keep=final, progress=progress)
    img = find(name)
    assert img is not None
    return img, True, time.monotonic() - t0


def builds_of(recipe_name: str) -> list[Path]:
    """Image directories of exactly this recipe (``<name>-<12 hex>``; ``debian12`` does not match
    ``debian12-x-<key>``, a build of another recipe)."""
    pattern = re.compile(re.escape(recipe_name) + r"-[0-9a-f]{12}")
    d = paths.images_dir()
    return [p for p in d.iterdir() if pattern.fullmatch(p.name)] if d.is_dir() else []


def _prune_superseded(recipe_name: str, keep: Path, progress) -> None:
    """Remove older builds of the same recipe (each is ~1 GiB) unless a guest still uses one."""
    in_use: set[str] = set()
    gd = paths.guests_dir()
    builds = builds_of(recipe_name)
    if gd.is_dir():
        for overlay in gd.glob("*/overlay.qcow2"):
            with open(overlay, "rb") as fh:  # the backing file path sits in the qcow2 header
                header = fh.read(4096)
            in_use.update(str(p) for p in builds if str(p).encode() in header)
    for old in builds:
        if old != keep and old.is_dir() and not old.is_symlink() and str(old) not in in_use:
            shutil.rmtree(old, ignore_errors=True)
            progress(f"removed superseded image {old.name}")


def restrict_base(base: Path) -> None:
    """base.qcow2 holds the guest's private SSH host key: readable by root and QEMU's group only.

    libvirt's dynamic ownership hands the file to the QEMU user while a guest uses it; the group
    read bit covers a libvirt without it.
    """
    import grp
    import pwd

    gid = None
    for user in ("libvirt-qemu", "qemu"):
        try:
            gid = pwd.getpwnam(user).pw_gid
            break
        except KeyError:
            continue
    if gid is None:
        try:
            gid = grp.getgrnam("kvm").gr_gid
        except KeyError:
            gid = 0
    os.chown(base, 0, gid)
    os.chmod(base, 0o640)
