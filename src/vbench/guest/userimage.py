"""A user's own guest image: ``guest: {image_file: PATH}`` in a scenario.

The image (qcow2 or raw) boots with its own bootloader (BIOS, or UEFI where OVMF is installed)
and its own kernel; vbench gives it a cloud-init NoCloud seed (see :mod:`vbench.guest.cloudinit`)
instead of writing anything into it. The path comes from a scenario, which may come from someone
else, and vbench runs as root, so the path is data, checked before anything uses it:

- it must name a regular file inside one of the allowed image directories: ``VBENCH_IMAGE_DIRS``
  (absolute directories separated by ``:``), by default ``<VBENCH_HOME>/user-images``
  (``/var/lib/vbench/user-images`` as root). A relative path is taken inside the first of them;
- no symbolic link anywhere in it: the path as written must be the file's real path (a planted
  link, ``..`` out of the directory, ``/proc/self/root/...`` are all refused);
- its format is read from its own header by vbench (the qcow2 magic, else raw) and passed to
  QEMU explicitly, never probed by QEMU; a qcow2 with a backing file or an external data file is
  refused (it would make QEMU open a second file that the path check never saw);
- it is never written: each guest gets its own qcow2 overlay over it, and it is read only by
  ``qemu-img info`` and by QEMU through that overlay.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from vbench.core import paths, procs
from vbench.guest.xml import OwnBoot, mac_for
from vbench.core.errors import ImageError
from vbench.core.untrusted import shown

IMAGE_DIRS_ENV = "VBENCH_IMAGE_DIRS"
QCOW2_MAGIC = b"QFI\xfb"
# Where Debian's ovmf package puts the UEFI firmware (code, variables template).
OVMF_PAIRS = (("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
              ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"))
# What each workload kind runs inside the guest (besides a POSIX shell and coreutils).
GUEST_TOOLS = {"fio": ("fio",), "iperf3": ("iperf3",), "ping": ("ping",)}


def allowed_dirs() -> list[Path]:
    env = os.environ.get(IMAGE_DIRS_ENV)
    if env:
        dirs = [Path(d) for d in env.split(os.pathsep) if d]
        bad = [str(d) for d in dirs if not d.is_absolute()]
        if bad:
            raise ImageError(f"{IMAGE_DIRS_ENV}: {shown(bad[0])} is not an absolute directory")
        return dirs
    return [paths.home() / "user-images"]


def resolve(text: str, dirs: list[Path] | None = None) -> Path:
    """The real path of the image ``text`` names, or ImageError (one line) saying why not."""
    dirs = allowed_dirs() if dirs is None else dirs
    if not isinstance(text, str) or not text or len(text) > 4096 or any(c in text for c in "\0\n\r"):
        raise ImageError(f"guest.image_file {shown(text)} is not a file path")
    given = Path(text)
    if ".." in given.parts:
        raise ImageError(f"guest.image_file {shown(text)}: '..' is not allowed in the path")
    path = given if given.is_absolute() else dirs[0] / given
    path = Path(os.path.normpath(path))
    where = " or ".join(str(d) for d in dirs)
    real_dirs = [Path(os.path.realpath(d)) for d in dirs]
    if Path(os.path.realpath(path)) != path:
        raise ImageError(f"guest image {path}: the path goes through a symbolic link; name the "
                         f"file by its real path inside {where}")
    if not any(path != d and path.is_relative_to(d) for d in real_dirs):
        raise ImageError(f"guest image {path} is outside the allowed image directories ({where}); "
                         f"put it there or list its directory in {IMAGE_DIRS_ENV}")
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ImageError(f"guest image {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"guest image {path} is not a regular file")
    return path


def read_format(path: Path) -> str:
    """``qcow2`` or ``raw``, from the file's first bytes (read with O_NOFOLLOW)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return "qcow2" if fh.read(4) == QCOW2_MAGIC else "raw"


def check_info(info: dict, path: Path) -> int:
    """Refuse what would make QEMU open other files; returns the virtual size in bytes."""
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImageError(f"guest image {path} has a backing file "
                         f"({shown(info.get('backing-filename'), 80)}); flatten it first "
                         f"(`qemu-img convert -O qcow2 IMAGE NEW`)")
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        raise ImageError(f"guest image {path} uses an external data file; flatten it first")
    size = info.get("virtual-size")
    if not isinstance(size, int) or size <= 0:
        raise ImageError(f"guest image {path}: qemu-img reports no virtual size")
    return size


def qemu_can_read(st: os.stat_result) -> bool:
    """Whether QEMU's user (libvirt-qemu or qemu) may read a file of this owner and mode. vbench
    never changes the owner of a user's image (libvirt is told not to relabel it either)."""
    import pwd

    if st.st_mode & stat.S_IROTH:
        return True
    for user in ("libvirt-qemu", "qemu"):
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            continue
        import grp

        groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
        return bool((st.st_uid == pw.pw_uid and st.st_mode & stat.S_IRUSR)
                    or (st.st_gid in groups and st.st_mode & stat.S_IRGRP))
    return True  # QEMU runs as root: it reads anything


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ovmf() -> tuple[str, str] | None:
    for code, vars_ in OVMF_PAIRS:
        if Path(code).exists() and Path(vars_).exists():
            return code, vars_
    return None


@dataclass(frozen=True)
class UserImage:
    """A user's image, checked; what :class:`vbench.guest.domain.Guest` needs of an image."""

    path: Path
    format: str
    sha256: str
    virtual_size: int
    firmware: str = "bios"
    loader: tuple[str, str] | None = None   # (OVMF code, variables template) for UEFI
    manifest: dict = field(default_factory=dict)

    own_boot = True
    user = "root"
    kernel = None      # no kernel outside the image: its own bootloader loads it
    initrd = None
    host_key_pub = ""  # per guest, from the seed (vbench.guest.domain.Guest.host_key)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def base(self) -> Path:
        return self.path

    @property
    def base_format(self) -> str:
        return self.format

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def kernel_release(self) -> str:
        return ""


def open_image(text: str, firmware: str = "bios") -> UserImage:
    """Check the image a scenario names and return it (hashing it: the run records its sha256)."""
    path = resolve(text)
    fmt = read_format(path)
    res = procs.run(["qemu-img", "info", "--output=json", "-f", fmt, str(path)], timeout=60)
    if not res.ok:
        raise ImageError(f"guest image {path}: qemu-img cannot read it as {fmt}: {res.tail()}")
    try:
        info = json.loads(res.stdout)
    except ValueError:
        raise ImageError(f"guest image {path}: qemu-img info printed no JSON") from None
    size = check_info(info, path)
    if not qemu_can_read(os.stat(path)):
        raise ImageError(f"guest image {path} is not readable by QEMU's user (libvirt-qemu); vbench "
                         f"does not change its owner: `chgrp libvirt-qemu` it and make it group-"
                         f"readable, or world-readable")
    loader = None
    if firmware == "uefi":
        loader = ovmf()
        if loader is None:
            raise ImageError(f"guest image {path} wants UEFI, but no OVMF firmware is installed "
                             f"(Debian package ovmf: apt-get install ovmf)")
    digest = sha256_file(path)
    return UserImage(path, fmt, digest, size, firmware, loader,
                     {"key": f"sha256:{digest}", "format": fmt, "firmware": firmware,
                      "virtual_size": size})


def required_tools(scn) -> dict[str, list[str]]:
    """tool -> workloads that need it inside the guest."""
    out: dict[str, list[str]] = {}
    for w in scn.workloads:
        for tool in GUEST_TOOLS.get(w.tool, ()):
            out.setdefault(tool, []).append(w.name)
    return out


def tools_script(tools: list[str]) -> str:
    return "".join(f"command -v {t} >/dev/null 2>&1 || echo missing={t}\n" for t in tools)


def missing_tools(output: str) -> list[str]:
    return [line[len("missing="):].strip() for line in output.splitlines()
            if line.startswith("missing=")]


def refuse_missing(image: str, missing: list[str], need: dict[str, list[str]]) -> ImageError:
    what = ", ".join(f"{t} (for {', '.join(need.get(t, []))})" for t in missing)
    err = ImageError(f"guest image {image} lacks what this scenario runs in the guest: {what}; "
                     f"install it in the image")
    err.stops_run = True  # type: ignore[attr-defined]
    return err


def probe_kernel(img) -> Path | None:
    """The kernel the accelerator probe boots: the image's own; a user's image has none outside
    it, so vbench's built image's kernel when there is one (else the probe says TCG, not probed)."""
    if img.kernel is not None:
        return img.kernel
    from vbench.host import images

    built = images.find_default()
    return built.kernel if built else None


def own_boot(image, guest_dir: Path, kernel_override: object = None) -> OwnBoot | None:
    """How a guest of ``image`` boots: None for vbench's own images (direct kernel boot)."""
    if not image.own_boot:
        return None
    if kernel_override:
        raise ImageError(f"a guest kernel of an A/B side cannot apply to {image.name}, which boots "
                         f"its own kernel; compare two images instead")
    loader = image.loader
    return OwnBoot(guest_dir / "seed.iso", loader[0] if loader else None,
                   loader[1] if loader else None, guest_dir / "nvram.fd" if loader else None,
                   Path(image.base), image.base_format)


def write_seed(guest_dir: Path, name: str, client_pub: str, test_nic: bool) -> str:
    """Write a guest's cloud-init seed (this run's client key, a host key made here, DHCP on each
    NIC by the MAC vbench gives it); returns the host key's public line, which SSH then pins."""
    from vbench.guest import cloudinit

    priv, pub = cloudinit.new_host_key()
    nics = {"mgmt": mac_for(name, "mgmt")}
    if test_nic:
        nics["test"] = mac_for(name, "test")
    cloudinit.write_seed(guest_dir / "seed.iso",
                         cloudinit.seed_files(name, client_pub, priv, pub, nics))
    return pub
