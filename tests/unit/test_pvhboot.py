"""The unpacked-kernel (PVH) boot of vbench's own images (vbench.host.pvhboot): which kernels it
takes, and that a kernel it cannot take stays the bzImage it is. Synthetic kernels; the real one is
booted by every integration test."""

from __future__ import annotations

import gzip
import lzma
import struct
from pathlib import Path

import pytest

from vbench.host import images, pvhboot


def elf_with_note(name: bytes = b"Xen\x00", kind: int = 18, phnum: int = 2) -> bytes:
    """A 64-bit little-endian ELF whose second program header is a PT_NOTE with one note."""
    desc = struct.pack("<I", 0x1000000)
    note = struct.pack("<III", len(name), len(desc), kind) + name + b"\0" * (-len(name) % 4) + desc
    phoff, phentsize = 64, 56
    note_at = phoff + phnum * phentsize
    head = bytearray(64)
    head[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", head, 0x20, phoff)
    struct.pack_into("<HH", head, 0x36, phentsize, phnum)
    phdrs = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, 0, 0, 0)  # PT_LOAD, nothing in it
    phdrs += struct.pack("<IIQQQQQQ", 4, 4, note_at, 0, 0, len(note), len(note), 4)
    return bytes(head) + phdrs[:phnum * phentsize] + note + b"\xcc" * 4096


def bzimage(packed: bytes, version: int = 0x20F, lie: int = 0) -> bytes:
    """A bzImage: setup sectors with the boot protocol header, then ``packed`` as its payload."""
    setup = bytearray(5 * 512)  # setup_sects = 4
    setup[0x1F1] = 4
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    struct.pack_into("<II", setup, 0x248, 16, len(packed) + lie)  # payload_offset, payload_length
    return bytes(setup) + b"\0" * 16 + packed + struct.pack("<I", 123)


@pytest.mark.parametrize("pack", [lambda b: lzma.compress(b, format=lzma.FORMAT_XZ), gzip.compress],
                         ids=["xz", "gzip"])
def test_a_kernel_with_the_pvh_note_is_unpacked(tmp_path: Path, pack) -> None:
    elf = elf_with_note()
    (tmp_path / "vmlinuz").write_bytes(bzimage(pack(elf)))
    assert pvhboot.unpack(tmp_path / "vmlinuz", tmp_path / "vmlinux")
    assert (tmp_path / "vmlinux").read_bytes() == elf


@pytest.mark.parametrize("case, data", [
    ("no PVH note (another Xen note)", bzimage(lzma.compress(elf_with_note(kind=17)))),
    ("a note of another owner", bzimage(lzma.compress(elf_with_note(name=b"Linux\x00")))),
    ("no note at all", bzimage(lzma.compress(elf_with_note(phnum=1)))),
    ("zstd payload (not unpacked here)", bzimage(b"\x28\xb5\x2f\xfd" + b"\0" * 64)),
    ("truncated xz stream", bzimage(lzma.compress(elf_with_note())[:-20])),
    ("corrupt xz stream", bzimage(lzma.compress(elf_with_note())[:40] + b"\xff" * 40)),
    ("payload length beyond the file", bzimage(lzma.compress(elf_with_note()), lie=10**6)),
    ("boot protocol older than 2.08", bzimage(lzma.compress(elf_with_note()), version=0x207)),
    ("not a bzImage", b"MZ" + b"\0" * 4096),
    ("empty file", b""),
    ("not an ELF inside", bzimage(lzma.compress(b"\x7fELG" + b"\0" * 200))),
])
def test_a_kernel_that_cannot_boot_unpacked_stays_a_bzimage(tmp_path: Path, case, data) -> None:
    (tmp_path / "vmlinuz").write_bytes(data)
    assert not pvhboot.unpack(tmp_path / "vmlinuz", tmp_path / "vmlinux"), case
    assert not (tmp_path / "vmlinux").exists()


def test_unpacking_is_bounded(tmp_path: Path, monkeypatch) -> None:
    """A payload that unpacks to more than MAX_KERNEL_BYTES is refused, not held in memory."""
    monkeypatch.setattr(pvhboot, "MAX_KERNEL_BYTES", 10_000)
    (tmp_path / "vmlinuz").write_bytes(bzimage(lzma.compress(elf_with_note() + b"\0" * 20_000)))
    assert not pvhboot.unpack(tmp_path / "vmlinuz", tmp_path / "vmlinux")


@pytest.mark.parametrize("phoff, phnum", [(2**62, 3), (10**6, 1), (64, 65535)])
def test_hostile_program_headers_are_no_pvh_entry(phoff: int, phnum: int) -> None:
    elf = bytearray(elf_with_note())
    struct.pack_into("<Q", elf, 0x20, phoff)
    struct.pack_into("<H", elf, 0x38, phnum)
    assert pvhboot.has_pvh_entry(bytes(elf)) is (phoff == 64)  # 64: the real headers come first


def test_note_sizes_that_run_past_the_segment_end_the_walk() -> None:
    elf = bytearray(elf_with_note(kind=17))
    note_at = 64 + 2 * 56
    struct.pack_into("<I", elf, note_at, 2**32 - 1)  # namesz
    assert not pvhboot.has_pvh_entry(bytes(elf))


@pytest.mark.parametrize("boot, name", [("pvh", "vmlinux"), ("bzimage", "vmlinuz"), (None, "vmlinuz")])
def test_guests_boot_the_file_the_manifest_names(tmp_path: Path, boot, name) -> None:
    manifest = {} if boot is None else {"kernel_boot": boot}
    img = images.Image("debian12", tmp_path, manifest)
    assert img.kernel == tmp_path / name
    assert img.kernel_boot == (boot or "bzimage")
