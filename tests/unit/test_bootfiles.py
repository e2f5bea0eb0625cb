from __future__ import annotations

import gzip
import lzma
import shutil
from pathlib import Path

import pytest

from bisector import proc
from bisector.kernel.base import KernelArtifact
from bisector.kernel.bootfiles import (
    Cpio,
    _read_module,
    build_initramfs,
    module_closure,
    needs_initramfs,
)


def fake_modules(tmp_path: Path) -> Path:
    mods = tmp_path / "lib" / "modules" / "6.1.0-1-amd64"
    for rel in ("kernel/fs/ext4/ext4.ko.xz", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko",
                "kernel/lib/crc16.ko", "kernel/drivers/block/virtio_blk.ko",
                "kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/net/veth.ko"):
        p = mods / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        body = b"\x7fELF module " + rel.encode()
        p.write_bytes(lzma.compress(body) if rel.endswith(".xz") else body)
    (mods / "modules.dep").write_text(
        "kernel/fs/ext4/ext4.ko.xz: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko "
        "kernel/lib/crc16.ko\nkernel/fs/jbd2/jbd2.ko:\nkernel/fs/mbcache.ko:\n"
        "kernel/lib/crc16.ko:\nkernel/drivers/block/virtio_blk.ko:\n"
        "kernel/drivers/virtio/virtio_pci.ko:\nkernel/drivers/net/veth.ko:\n")
    return mods


def test_module_closure_dependencies_first(tmp_path: Path) -> None:
    order = module_closure(fake_modules(tmp_path), ("ext4", "virtio_blk", "no_such"))
    assert order.index("kernel/fs/jbd2/jbd2.ko") < order.index("kernel/fs/ext4/ext4.ko.xz")
    assert "kernel/drivers/net/veth.ko" not in order


def test_initramfs_is_a_valid_newc_archive(tmp_path: Path) -> None:
    mods = fake_modules(tmp_path)
    config = tmp_path / "config"
    config.write_text("CONFIG_VIRTIO_BLK=m\nCONFIG_EXT4_FS=m\n")
    art = KernelArtifact(spec="x", release="6.1.0-1-amd64", image=tmp_path / "vmlinuz",
                         modules=mods, config=config, root=tmp_path)
    assert needs_initramfs(art)
    out = build_initramfs(art, tmp_path / "initrd.gz")
    raw = gzip.decompress(out.read_bytes())
    (tmp_path / "initrd.cpio").write_bytes(raw)
    listing = proc.run(["cpio", "-it", "-F", tmp_path / "initrd.cpio"]).stdout.split()
    assert {"init", "bin/busybox", "dev/console", "modules/order", "modules/ext4.ko"} <= \
        set(listing)
    # xz modules are stored decompressed (busybox insmod cannot unpack them)
    assert b"\x7fELF module kernel/fs/ext4/ext4.ko.xz" in raw
    order = raw.split(b"modules/order\0")[1].lstrip(b"\0").split(b"\0")[0].decode().split()
    assert order.index("jbd2.ko") < order.index("ext4.ko")


def test_builtin_kernel_needs_no_initramfs(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("".join(f"CONFIG_{o}=y\n" for o in
                              ("VIRTIO_PCI", "VIRTIO_BLK", "VIRTIO_NET", "EXT4_FS")))
    art = KernelArtifact(spec="x", release="r", image=tmp_path / "k",
                         modules=fake_modules(tmp_path), config=config, root=tmp_path)
    assert not needs_initramfs(art)


def test_cpio_padding() -> None:
    c = Cpio()
    c.file("a", b"123")
    data = c.finish()
    assert data.startswith(b"070701") and len(data) % 512 == 0 and b"TRAILER!!!" in data


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd not installed")
def test_zstd_module_is_read_decompressed(tmp_path: Path) -> None:
    # busybox insmod cannot unpack a .ko.zst: it goes into the initramfs decompressed
    body = b"\x7fELF module kernel/net/veth.ko.zst" + bytes(range(256))
    ko = tmp_path / "veth.ko.zst"
    ko.write_bytes(proc.run_bytes(["zstd", "-q", "-c"], input=body).stdout)
    assert _read_module(ko) == body
