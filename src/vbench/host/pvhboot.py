"""Direct kernel boot without the kernel's own decompressor: the same kernel, unpacked once on
the host, booted through its PVH entry point.

A Debian bzImage is a small decompressor with the kernel inside it as an XZ stream. Under TCG the
guest spends about 6 s unpacking it before the kernel prints its first line (measured on the
project's machines: "Booting from ROM" at 0.14 s, "Linux version" at 6.6 s; with the unpacked
kernel 0.5 s), about a sixth of a guest's whole boot to SSH. QEMU (4.0 and later) boots an ELF
kernel that carries the PVH entry note (``CONFIG_PVH``, set in Debian's kernels) directly: same
kernel, same initrd, same command line, so every device the guest sees and every driver it binds
is unchanged; what differs is that the decompressor (and its KASLR choice of where the kernel
lands) does not run. The image build unpacks ``vmlinuz`` into ``vmlinux`` here; a kernel that is
not XZ or gzip, or has no PVH note, keeps booting as the bzImage it is.

The bzImage comes from a Debian package of the image build; it is still parsed as data: offsets
are checked against the file, the output is bounded, nothing is executed.
"""

from __future__ import annotations

import lzma
import struct
import zlib
from pathlib import Path

from vbench.core.files import atomic_write, read_bytes

MAX_KERNEL_BYTES = 512 * 2**20      # an unpacked kernel (Debian's: 66 MB); more is not a kernel
MAX_BZIMAGE_BYTES = 128 * 2**20     # a packed one (Debian's: 8 MB)
XEN_ELFNOTE_PHYS32_ENTRY = 18       # the PVH entry point note QEMU looks for
PT_NOTE = 4


def payload(bz: bytes) -> bytes | None:
    """The compressed kernel inside a bzImage (boot protocol 2.08+: payload_offset and
    payload_length in the setup header), or None when ``bz`` is not such a bzImage."""
    if len(bz) < 0x250 or bz[0x202:0x206] != b"HdrS" or struct.unpack_from("<H", bz, 0x206)[0] < 0x208:
        return None
    setup_sects = bz[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bz, 0x248)
    start = (setup_sects + 1) * 512 + offset
    if length == 0 or start + length > len(bz):
        return None
    return bz[start:start + length]


def decompress(data: bytes) -> bytes | None:
    """The unpacked kernel of an XZ or gzip payload (what Debian and most distributions use);
    None for another format, a damaged stream or more than MAX_KERNEL_BYTES."""
    try:
        if data.startswith(b"\xfd7zXZ\x00"):
            xz = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=MAX_KERNEL_BYTES)
            out = xz.decompress(data, max_length=MAX_KERNEL_BYTES + 1)
            done = xz.eof
        elif data.startswith(b"\x1f\x8b"):
            gz = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = gz.decompress(data, MAX_KERNEL_BYTES + 1)
            done = gz.eof
        else:
            return None
    except (lzma.LZMAError, zlib.error):
        return None
    return out if done and len(out) <= MAX_KERNEL_BYTES else None


def has_pvh_entry(elf: bytes) -> bool:
    """Whether ``elf`` is a 64-bit x86 ELF with the Xen PHYS32_ENTRY note (the PVH entry)."""
    if len(elf) < 64 or elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(min(phnum, 64)):
        at = phoff + i * phentsize
        if phentsize < 56 or at + 56 > len(elf):
            return False
        p_type, = struct.unpack_from("<I", elf, at)
        p_offset, = struct.unpack_from("<Q", elf, at + 8)
        p_filesz, = struct.unpack_from("<Q", elf, at + 32)
        if p_type == PT_NOTE and _notes_have_pvh(elf, p_offset, min(p_offset + p_filesz, len(elf))):
            return True
    return False


def _notes_have_pvh(elf: bytes, pos: int, end: int) -> bool:
    while pos + 12 <= end:
        namesz, descsz, kind = struct.unpack_from("<III", elf, pos)
        name = elf[pos + 12:pos + 12 + namesz]
        if name == b"Xen\x00" and kind == XEN_ELFNOTE_PHYS32_ENTRY:
            return True
        pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def unpack(bzimage: Path, out: Path) -> bool:
    """Write the PVH-bootable kernel of ``bzimage`` to ``out``; False (nothing written) when the
    kernel cannot boot that way and stays a bzImage."""
    data = payload(read_bytes(bzimage, MAX_BZIMAGE_BYTES))
    elf = decompress(data) if data is not None else None
    if elf is None or not has_pvh_entry(elf):
        return False
    atomic_write(out, elf, 0o644)
    return True
