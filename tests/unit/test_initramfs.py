"""vbench's own guest initramfs (vbench.host.initramfs): which modules, in which order, what the
archive holds, what its /init does with the kernel line; and how a boot that stops in it reads."""

from __future__ import annotations

import lzma
import shutil
import subprocess
from pathlib import Path

import pytest

from vbench.core.errors import ImageError
from vbench.host import bootlog, images, initramfs
from tests.unit.test_lab_units import parse_newc

CONSOLE = Path(__file__).resolve().parents[1] / "data" / "console"

# the shape of Debian 6.1's modules.dep for the root disk's modules
MODULES_DEP = """\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko \
kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko \
kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/crypto/crc32c_generic.ko.xz:
kernel/arch/x86/crypto/crc32c-intel.ko:
"""


def _dep():
    return initramfs.parse_modules_dep(MODULES_DEP)


def test_dependencies_come_first_and_each_module_once():
    order = initramfs.load_order(_dep(), set(), ["virtio_pci", "virtio_blk", "ext4"])
    names = [initramfs.module_name(p) for p in order]
    assert len(names) == len(set(names)) == 10
    for mod, deps in {"ext4": ["crc16", "mbcache", "jbd2"], "virtio_blk": ["virtio_ring", "virtio"],
                      "virtio_pci": ["virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio"],
                      "virtio_ring": ["virtio"]}.items():
        assert all(names.index(d) < names.index(mod) for d in deps), (mod, names)


def test_dash_and_underscore_name_the_same_module_and_builtins_need_nothing():
    order = initramfs.load_order(_dep(), {"crc16"}, ["crc32c_intel", "ext4"])
    assert order[0] == "kernel/arch/x86/crypto/crc32c-intel.ko"
    assert "kernel/lib/crc16.ko" not in order and order[-1] == "kernel/fs/ext4/ext4.ko"
    assert initramfs.load_order(_dep(), {"virtio_blk"}, ["virtio_blk"]) == []


def test_a_module_the_kernel_does_not_have_is_an_error():
    with pytest.raises(ValueError, match="initramfs_modules: the image's kernel has no module 'nope'"):
        initramfs.load_order(_dep(), set(), ["ext4", "nope"])


def test_a_dependency_without_a_line_of_its_own_is_an_error():
    dep = initramfs.parse_modules_dep("kernel/a.ko: kernel/b.ko\n")
    with pytest.raises(ValueError, match="modules.dep: a needs b, which it does not list"):
        initramfs.load_order(dep, set(), ["a"])


def test_a_dependency_cycle_is_an_error_not_a_hang():
    dep = initramfs.parse_modules_dep("a.ko: b.ko\nb.ko: a.ko\n")
    with pytest.raises(ValueError, match="cycle"):
        initramfs.load_order(dep, set(), ["a"])


@pytest.mark.parametrize("line", ["/etc/shadow.ko:", "kernel/../../../etc/x.ko:",
                                  "kernel/a.ko: ../b.ko", "kernel/a.ko: /b.ko"])
def test_modules_dep_paths_stay_under_the_module_directory(line):
    with pytest.raises(ValueError, match="not a module path"):
        initramfs.parse_modules_dep(line)


def _moddir(tmp_path: Path) -> Path:
    moddir = tmp_path / "lib/modules/6.1.0-57-amd64"
    for line in MODULES_DEP.replace("\\\n", "").splitlines():
        rel = line.split(":")[0]
        (moddir / rel).parent.mkdir(parents=True, exist_ok=True)
        body = b"\x7fELF " + rel.encode()
        (moddir / rel).write_bytes(lzma.compress(body) if rel.endswith(".xz") else body)
    (moddir / "modules.dep").write_text(MODULES_DEP.replace("\\\n", ""))
    (moddir / "modules.builtin").write_text("kernel/lib/crc16.ko\n")
    return moddir


@pytest.fixture
def static_busybox(tmp_path, monkeypatch):
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF static busybox")
    monkeypatch.setattr(initramfs, "BUSYBOX", fake)
    return fake


def test_the_archive_has_busybox_its_applets_the_modules_in_order_and_init(tmp_path, static_busybox):
    archive = initramfs.guest_initramfs(_moddir(tmp_path), ["virtio_pci", "virtio_blk", "ext4",
                                                            "crc32c_generic"])
    entries = {name: (mode, body) for name, mode, body in parse_newc(archive)}
    assert entries["bin/busybox"] == (0o100755, static_busybox.read_bytes())
    assert entries["bin/sh"] == (0o120777, b"busybox") and entries["bin/switch_root"][1] == b"busybox"
    assert entries["init"][0] == 0o100755 and entries["init"][1] == initramfs.INIT.encode()
    listed = entries["modules"][1].decode().split()
    assert listed[-2:] == ["ext4.ko", "crc32c_generic.ko"] and "crc16.ko" not in listed  # built in
    assert listed.index("virtio.ko") < listed.index("virtio_ring.ko") < listed.index("virtio_blk.ko")
    for m in listed:
        assert entries[f"lib/modules/{m}"][1].startswith(b"\x7fELF ")
    # .ko.xz is unpacked: busybox insmod reads plain ELF
    assert entries["lib/modules/crc32c_generic.ko"][1] == b"\x7fELF kernel/crypto/crc32c_generic.ko.xz"


def test_a_module_compressed_otherwise_is_refused(tmp_path, static_busybox):
    moddir = _moddir(tmp_path)
    (moddir / "kernel/x.ko.zst").write_bytes(b"zstd")
    (moddir / "modules.dep").write_text(MODULES_DEP.replace("\\\n", "") + "kernel/x.ko.zst:\n")
    with pytest.raises(ValueError, match="only .ko and .ko.xz"):
        initramfs.guest_initramfs(moddir, ["x"])


def test_a_dynamic_busybox_is_refused(tmp_path, monkeypatch):
    dyn = tmp_path / "busybox"
    dyn.write_bytes(b"\x7fELF" + b"\0" * 100 + b"/lib64/ld-linux-x86-64.so.2")
    monkeypatch.setattr(initramfs, "BUSYBOX", dyn)
    with pytest.raises(ValueError, match="busybox-static"):
        initramfs.static_busybox()
    monkeypatch.setattr(initramfs, "BUSYBOX", tmp_path / "none")
    with pytest.raises(ValueError, match="setup.sh"):
        initramfs.static_busybox()


def test_image_build_says_in_one_line_what_is_wrong(tmp_path, static_busybox):
    recipe = images.Recipe(name="r", suite="bookworm", packages=["udev"], initramfs="busybox",
                           initramfs_modules=["ext4", "floppy"])
    with pytest.raises(ImageError, match="recipe r: cannot write its busybox initramfs: "
                                         "initramfs_modules: .*no module 'floppy'"):
        images._own_initramfs(_moddir(tmp_path), recipe, tmp_path / "initrd.img")
    assert not (tmp_path / "initrd.img").exists()


def test_a_busybox_initramfs_needs_modules_and_the_default_guest_uses_one():
    with pytest.raises(ValueError, match="initramfs busybox loads only initramfs_modules"):
        images.Recipe(name="r", suite="bookworm", packages=["udev"], initramfs="busybox")
    recipe, _ = images.load_recipe("debian12")
    assert recipe.initramfs == "busybox"
    assert images.Recipe(name="r", suite="bookworm", packages=["udev"]).initramfs == "initramfs-tools"


@pytest.mark.skipif(shutil.which("busybox") is None and not Path("/bin/busybox").exists(),
                    reason="no busybox on this host")
def test_init_is_valid_shell_for_busybox():
    sh = shutil.which("busybox") or "/bin/busybox"
    cp = subprocess.run([sh, "sh", "-n", "-c", initramfs.INIT], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    assert f"after {initramfs.ROOT_WAIT_S} s" in initramfs.INIT and "@" not in initramfs.INIT


def test_init_reads_the_kernel_line(tmp_path):
    """The kernel-line loop of /init, run by the host's sh over a crafted line."""
    loop = initramfs.INIT.split("for arg in", 1)[1].split("done", 1)[0]
    script = ("root=; mode=ro; init=/sbin/init; stop=\nfor arg in" + loop.replace(
        "$(cat /proc/cmdline)", "$LINE") + "done\necho \"$root|$mode|$init|$stop\"\n")
    def run(line: str) -> str:
        return subprocess.run(["sh", "-c", script], env={"LINE": line}, capture_output=True,
                              text=True, check=True).stdout.strip()
    assert run("root=LABEL=vbench-root rw console=ttyS0,115200") == "LABEL=vbench-root|rw|/sbin/init|"
    assert run("root=/dev/vda ro init=/bin/sh break=top") == "/dev/vda|ro|/bin/sh|top"
    assert run("rw quiet") == "|rw|/sbin/init|"


def test_a_boot_stopped_in_this_initramfs_reads_as_its_shell():
    text = (CONSOLE / "busybox-initramfs-shell.log").read_text(errors="replace")
    d = bootlog.explain(text)
    assert d.stage == "kernel"
    assert d.reason.startswith("kernel booted, userspace did not start (the initramfs dropped to "
                               "its emergency shell)")
    assert d.reason.endswith("last console line: '(initramfs)'"), d.reason  # no terminal queries
    full = bootlog.read((CONSOLE / "busybox-full-boot.log").read_text(errors="replace"))
    assert full.initramfs and not full.initramfs_shell and full.userspace and full.sshd
    assert not full.kernel_warning
