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
- not a hard link (``st_nlink`` 1): a link in an allowed directory to a file outside it would
  pass the path check;
- it is used as it was checked: vbench opens it once (no links followed), checks that the open
  file is the one the path check saw, and copies it through that descriptor, hashing as it goes,
  into a private root-owned copy under ``<VBENCH_HOME>/images/user`` (kept by its sha256, so a
  second run reuses it). ``qemu-img info`` checks the copy, each guest's overlay is made over the
  copy, and the copy's hash is verified again when an overlay is made (:meth:`UserImage.verify`).
  Swapping the file after its check changes nothing vbench or QEMU reads;
- it is never written: each guest gets its own qcow2 overlay over the copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from vbench.core import paths, procs
from vbench.guest.xml import OwnBoot, mac_for
from vbench.core.errors import ImageError, ImageUnfit
from vbench.core.untrusted import shown

IMAGE_DIRS_ENV = "VBENCH_IMAGE_DIRS"
QCOW2_MAGIC = b"QFI\xfb"
# Where Debian's ovmf package puts the UEFI firmware (code, variables template).
OVMF_PAIRS = (("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
              ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"))
# What each workload kind runs inside the guest (besides a POSIX shell and coreutils).


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
    if st.st_nlink > 1:
        raise ImageError(f"guest image {path} has {st.st_nlink} hard links; vbench uses only a "
                         f"file with one (a link may lead outside the allowed directories): copy it")
    return path


def private_copy(path: Path) -> tuple[Path, str, str]:
    """(copy, sha256, format) of the image at ``path``: opened once without following links,
    checked to be the file the path check saw (one link, a regular file), and copied through
    that descriptor, hashed on the way, to a root-owned file under the images directory."""
    before = os.lstat(path)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as src:
        st = os.fstat(src.fileno())
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(st.st_mode) \
                or st.st_nlink != 1:
            raise ImageError(f"guest image {path} changed while it was checked; try again")
        d = paths.images_dir() / "user"
        d.mkdir(mode=0o755, parents=True, exist_ok=True)
        paths.trusted_dir(d)
        tmp = d / f".copy-{os.getpid()}-{st.st_ino}"
        h = hashlib.sha256()
        head = b""
        try:
            with paths.new_file(tmp, 0o644) as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    head = head or block[:4]
                    h.update(block)
                    dst.write(block)
            digest = h.hexdigest()
            fmt = "qcow2" if head == QCOW2_MAGIC else "raw"
            final = d / f"{digest}.{fmt}"
            os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ImageError(f"cannot copy guest image {path} into {d}: {exc.strerror}; free "
                             f"disk space there") from None
    return final, digest, fmt


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

    path: Path                              # the private copy QEMU reads (see the module doc)
    format: str
    sha256: str
    virtual_size: int
    firmware: str = "bios"
    loader: tuple[str, str] | None = None   # (OVMF code, variables template) for UEFI
    manifest: dict = field(default_factory=dict)
    source: Path | None = None              # the file the scenario named

    own_boot = True
    user = "root"
    kernel = None      # no kernel outside the image: its own bootloader loads it
    initrd = None
    host_key_pub = ""  # per guest, from the seed (vbench.guest.domain.Guest.host_key)

    @property
    def name(self) -> str:
        return (self.source or self.path).name

    def verify(self) -> None:
        """Before an overlay is made over it: the copy still has the hash that was checked."""
        if sha256_file(self.path) != self.sha256:
            raise ImageError(f"guest image {self.name}: vbench's copy {self.path} no longer has "
                             f"the sha256 it was checked with; refusing to use it")

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
    source = resolve(text)
    if not qemu_can_read(os.lstat(source)):
        raise ImageError(f"guest image {source} is not readable by QEMU's user (libvirt-qemu); "
                         f"vbench does not change its owner: `chgrp libvirt-qemu` it and make it "
                         f"group-readable, or world-readable")
    path, digest, fmt = private_copy(source)
    res = procs.run(["qemu-img", "info", "--output=json", "-f", fmt, str(path)], timeout=60)
    if not res.ok:
        raise ImageError(f"guest image {path}: qemu-img cannot read it as {fmt}: {res.tail()}")
    try:
        info = json.loads(res.stdout)
    except ValueError:
        raise ImageError(f"guest image {path}: qemu-img info printed no JSON") from None
    size = check_info(info, source)
    loader = None
    if firmware == "uefi":
        loader = ovmf()
        if loader is None:
            raise ImageError(f"guest image {path} wants UEFI, but no OVMF firmware is installed "
                             f"(Debian package ovmf: apt-get install ovmf)")
    return UserImage(path, fmt, digest, size, firmware, loader,
                     {"key": f"sha256:{digest}", "format": fmt, "firmware": firmware,
                      "virtual_size": size}, source)


def required_tools(scn) -> dict[str, list[str]]:
    """tool -> workloads that need it inside the guest."""
    out: dict[str, list[str]] = {}
    for w in scn.workloads:
        for tool in w.kind.guest_tools:
            out.setdefault(tool, []).append(w.name)
    return out


def tools_script(tools: list[str]) -> str:
    return "".join(f"command -v {t} >/dev/null 2>&1 || echo missing={t}\n" for t in tools)


def missing_tools(output: str) -> list[str]:
    return [line[len("missing="):].strip() for line in output.splitlines()
            if line.startswith("missing=")]


def refuse_missing(image: str, missing: list[str], need: dict[str, list[str]]) -> ImageError:
    what = ", ".join(f"{t} (for {', '.join(need.get(t, []))})" for t in missing)
    return ImageUnfit(f"guest image {image} lacks what this scenario runs in the guest: {what}; "
                      f"install it in the image")


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
