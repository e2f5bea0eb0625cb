"""Host-side unpacking of bzImages for a direct (PVH) boot under TCG."""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
from pathlib import Path

import pytest

import bisector.vm as vm
from bisector import proc
from bisector.kernel.bootfiles import read_bzimage_header
from bisector.kernel.local import _bzimage_release
from bisector.vm import direct_boot_kernel, has_pvh_entry


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


def bzimage(payload: bytes, version: bytes = b"6.1.0-test (t@host) #1 SMP",
            protocol: int = 0x20F) -> bytes:
    setup_sects = 4
    img = bytearray((setup_sects + 1) * 512)
    img[0x1F1] = setup_sects
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, protocol)
    struct.pack_into("<H", img, 0x20E, 0x400 - 0x200)  # kernel_version: file offset 0x400
    img[0x400:0x400 + len(version) + 1] = version + b"\0"
    struct.pack_into("<II", img, 0x248, 0x10, len(payload))
    return bytes(img) + b"\0" * 0x10 + payload + b"\0" * 64


@pytest.fixture
def decompress_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every payload the host decompresses: a cache hit must add none."""
    calls: list[bytes] = []
    real = vm._decompress

    def counting(payload: bytes) -> bytes | None:
        calls.append(payload)
        return real(payload)

    monkeypatch.setattr(vm, "_decompress", counting)
    return calls


def test_one_header_parser_gives_release_and_payload(tmp_path: Path) -> None:
    data = bzimage(b"PAYLOAD")
    header = read_bzimage_header(data)
    assert header is not None
    assert header.release == "6.1.0-test" and header.payload(data) == b"PAYLOAD"
    (tmp_path / "bzImage").write_bytes(data)
    assert _bzimage_release(tmp_path / "bzImage") == "6.1.0-test"  # local:/git: use it


def test_old_boot_protocol_has_a_release_but_no_payload() -> None:
    data = bzimage(b"PAYLOAD", protocol=0x207)  # payload fields came with 2.08
    header = read_bzimage_header(data)
    assert header is not None and header.release == "6.1.0-test"
    assert header.payload(data) is None
    assert read_bzimage_header(b"MZ" + b"\0" * 0x300) is None


def test_pvh_note_detection() -> None:
    assert has_pvh_entry(elf_with_note(b"Xen", 18))
    assert not has_pvh_entry(elf_with_note(b"Xen", 17))
    assert not has_pvh_entry(elf_with_note(b"GNU", 18))
    assert not has_pvh_entry(b"MZ not an elf" * 10)


def test_gzip_and_xz_payloads_unpack_and_cache(tmp_path: Path, tmp_cache: Path,
                                               decompress_calls: list[bytes]) -> None:
    elf = elf_with_note(b"Xen", 18)
    for comp in (gzip.compress, lambda d: lzma.compress(d, format=lzma.FORMAT_XZ)):
        decompress_calls.clear()
        k = tmp_path / "bzImage"
        k.write_bytes(bzimage(comp(elf)))
        out = direct_boot_kernel(k)
        assert out is not None and out.read_bytes() == elf
        assert len(decompress_calls) == 1
        assert direct_boot_kernel(k) == out
        assert len(decompress_calls) == 1  # cached by content: not unpacked again


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd not installed")
def test_zstd_payload_unpacks_through_the_zstd_tool(tmp_path: Path, tmp_cache: Path) -> None:
    elf = elf_with_note(b"Xen", 18)
    # like kbuild: the zstd frame, then the decompressed size (which zstd must not see)
    payload = proc.run_bytes(["zstd", "-q", "-c"], input=elf).stdout + struct.pack("<I", len(elf))
    k = tmp_path / "bzImage"
    k.write_bytes(bzimage(payload))
    out = direct_boot_kernel(k)
    assert out is not None and out.read_bytes() == elf


def test_kernel_without_pvh_boots_as_is(tmp_path: Path, tmp_cache: Path,
                                        decompress_calls: list[bytes]) -> None:
    k = tmp_path / "bzImage"
    k.write_bytes(bzimage(gzip.compress(elf_with_note(b"GNU", 1))))
    assert direct_boot_kernel(k) is None
    assert len(decompress_calls) == 1
    assert direct_boot_kernel(k) is None
    assert len(decompress_calls) == 1  # remembered (".no-pvh"), not unpacked again
    junk = tmp_path / "junk"
    junk.write_bytes(b"HdrS" * 100)
    assert direct_boot_kernel(junk) is None
