"""Host-side unpacking of bzImages for a direct (PVH) boot under TCG."""

from __future__ import annotations

import gzip
import lzma
import struct
from pathlib import Path

from bisector.vm import _bzimage_payload, direct_boot_kernel, has_pvh_entry


def elf_with_note(name: bytes, ntype: int) -> bytes:
    """A minimal ELF64 header + one PT_NOTE program header + the note."""
    ehdr = bytearray(64)
    ehdr[:4] = b"\x7fELF"
    ehdr[4], ehdr[5] = 2, 1  # ELFCLASS64, little endian
    struct.pack_into("<Q", ehdr, 32, 64)  # e_phoff
    struct.pack_into("<HH", ehdr, 54, 56, 1)  # e_phentsize, e_phnum
    namez = name + b"\0"
    note = struct.pack("<III", len(namez), 4, ntype) + namez.ljust((len(namez) + 3) // 4 * 4,
                                                                  b"\0") + b"\0" * 4
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(note), len(note), 4)
    return bytes(ehdr) + phdr + note + b"kernel text" * 10


def bzimage(payload: bytes) -> bytes:
    setup_sects = 4
    img = bytearray((setup_sects + 1) * 512)
    img[0x1F1] = setup_sects
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, 0x20F)
    struct.pack_into("<II", img, 0x248, 0x10, len(payload))
    return bytes(img) + b"\0" * 0x10 + payload + b"\0" * 64


def test_pvh_note_detection() -> None:
    assert has_pvh_entry(elf_with_note(b"Xen", 18))
    assert not has_pvh_entry(elf_with_note(b"Xen", 17))
    assert not has_pvh_entry(elf_with_note(b"GNU", 18))
    assert not has_pvh_entry(b"MZ not an elf" * 10)


def test_gzip_and_xz_payloads_unpack_and_cache(tmp_path: Path, tmp_cache: Path) -> None:
    elf = elf_with_note(b"Xen", 18)
    for comp in (gzip.compress, lambda d: lzma.compress(d, format=lzma.FORMAT_XZ)):
        k = tmp_path / "bzImage"
        k.write_bytes(bzimage(comp(elf)))
        assert _bzimage_payload(k.read_bytes()) is not None
        out = direct_boot_kernel(k)
        assert out is not None and out.read_bytes() == elf
        assert direct_boot_kernel(k) == out  # cached by content


def test_kernel_without_pvh_boots_as_is(tmp_path: Path, tmp_cache: Path) -> None:
    k = tmp_path / "bzImage"
    k.write_bytes(bzimage(gzip.compress(elf_with_note(b"GNU", 1))))
    assert direct_boot_kernel(k) is None
    assert direct_boot_kernel(k) is None  # remembered (".no-pvh"), not unpacked again
    junk = tmp_path / "junk"
    junk.write_bytes(b"HdrS" * 100)
    assert direct_boot_kernel(junk) is None
