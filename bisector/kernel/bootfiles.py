"""Make a modular distro kernel boot in our guest.

Debian and Ubuntu build virtio and ext4 as modules, so the kernel alone
cannot mount the guest's root disk.  For such a kernel we generate, once per
artifact (cached next to it):

* a tiny initramfs: static busybox, the closure of the modules needed to
  reach the root disk and the network (from ``modules.dep``), and an init that
  loads them, mounts ``/dev/vda`` and ``switch_root``s into the image's init;
* a read-only *modules disk* (ext4 made with ``mke2fs -d``, no root or loop
  devices needed) holding the whole ``lib/modules/<release>`` tree, mounted
  by the guest so reproducers can ``modprobe`` anything the kernel ships.

A kernel with virtio/ext4 built in (a ``git:`` build) needs neither.

It also holds the one reader of an x86 bzImage's setup header
(:func:`read_bzimage_header`): the release string for ``local:`` and ``git:``
kernels and the compressed payload for a direct (PVH) boot come from the same
few bytes, so they are parsed in one place.
"""

from __future__ import annotations

import gzip
import io
import logging
import lzma
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import InfraError
from ..paths import disk_usage, locked
from .base import KernelArtifact

log = logging.getLogger(__name__)

#: what the guest needs before its own init runs: root disk, ext4, network
BOOT_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4", "crc32c_generic",
                "crc32c_intel")
#: config options that, when all built in, make the initramfs unnecessary
BUILTIN_NEEDED = ("CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_BLK", "CONFIG_VIRTIO_NET",
                  "CONFIG_EXT4_FS")
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
INITRAMFS_VERSION = "1"

INIT_SCRIPT = r"""#!/bin/busybox sh
# bisector initramfs: load the modules that reach the root disk, then hand over.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "bisector-initramfs: loading $(wc -l < /modules/order) modules"
while read -r m; do
    insmod "/modules/$m" 2>/dev/null || echo "bisector-initramfs: insmod $m failed"
done < /modules/order
init=/sbin/bisector-init
for arg in $(cat /proc/cmdline); do
    case "$arg" in init=*) init="${arg#init=}" ;; esac
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    echo "bisector-initramfs: cannot mount the root disk /dev/vda"
    exit 1
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot "$init"
"""


@dataclass(frozen=True)
class BzImageHeader:
    """The fields of an x86 bzImage setup header (Documentation/arch/x86/boot.rst) we use.

    Offsets are from the start of the file.  ``version`` is the kernel's own
    version string ("6.1.0-56-amd64 (debian-kernel@…) #1 SMP …"), None when
    the header does not point at one; ``payload_offset`` is None before boot
    protocol 2.08, which introduced the payload fields.
    """

    protocol: int
    setup_size: int
    version: str | None
    payload_offset: int | None
    payload_length: int

    @property
    def release(self) -> str | None:
        """What ``uname -r`` prints: the version string's first word."""
        first = self.version.split(" ", 1)[0] if self.version else ""
        return first or None

    def payload(self, data: bytes) -> bytes | None:
        """The compressed vmlinux inside ``data`` (the whole bzImage), or None."""
        if self.payload_offset is None or self.payload_length == 0:
            return None
        end = self.payload_offset + self.payload_length
        if end > len(data):
            return None
        return data[self.payload_offset:end]


#: where the setup header's fields live (offsets in the file)
_HDR_SETUP_SECTS, _HDR_MAGIC, _HDR_VERSION, _HDR_KERNEL_VERSION = 0x1F1, 0x202, 0x206, 0x20E
_HDR_PAYLOAD = 0x248
#: the kernel version string is NUL-terminated and short; never read past this
_VERSION_MAX = 256


def read_bzimage_header(data: bytes) -> BzImageHeader | None:
    """Parse the setup header at the start of ``data``; None if it is not a bzImage.

    ``data`` needs only the first 64 KiB for the version string, the whole
    file for :meth:`BzImageHeader.payload`.  Fields beyond ``data`` (a short
    or old image) come back as "absent" rather than raising.
    """
    if len(data) < _HDR_MAGIC + 4 or data[_HDR_MAGIC:_HDR_MAGIC + 4] != b"HdrS":
        return None
    protocol = struct.unpack_from("<H", data, _HDR_VERSION)[0] \
        if len(data) >= _HDR_VERSION + 2 else 0
    setup_size = ((data[_HDR_SETUP_SECTS] or 4) + 1) * 512
    version = None
    if len(data) >= _HDR_KERNEL_VERSION + 2:
        ptr = struct.unpack_from("<H", data, _HDR_KERNEL_VERSION)[0]
        if ptr:
            off = ptr + 0x200
            raw = data[off:off + _VERSION_MAX].split(b"\0", 1)[0]
            version = raw.decode("ascii", errors="replace") or None
    payload_offset, payload_length = None, 0
    if protocol >= 0x208 and len(data) >= _HDR_PAYLOAD + 8:
        offset, payload_length = struct.unpack_from("<II", data, _HDR_PAYLOAD)
        payload_offset = setup_size + offset
    return BzImageHeader(protocol=protocol, setup_size=setup_size, version=version,
                         payload_offset=payload_offset, payload_length=payload_length)


@dataclass(frozen=True)
class BootFiles:
    initrd: Path | None
    modules_disk: Path | None


def _modname(path: str) -> str:
    name = Path(path).name
    for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return name.replace("-", "_")


def module_closure(modules_dir: Path, wanted: tuple[str, ...]) -> list[str]:
    """Relative module paths to load, dependencies first (from modules.dep)."""
    dep_file = modules_dir / "modules.dep"
    if not dep_file.exists():
        raise InfraError(f"{modules_dir}: no modules.dep (depmod did not run?)")
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in dep_file.read_text().splitlines():
        path, sep, rest = line.partition(":")
        if sep:
            deps[_modname(path)] = (path, rest.split())
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in deps:
            return
        seen.add(name)
        path, requires = deps[name]
        for r in requires:
            visit(_modname(r))
        order.append(path)

    for w in wanted:
        visit(w)
    return order


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return proc.run_bytes(["zstd", "-dcq"], input=data, timeout=60).stdout
    return data


class Cpio:
    """A minimal writer for the kernel's ``newc`` initramfs format (no root needed)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
               ) -> None:
        namez = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0]
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.buf.write(namez)
        self.buf.write(b"\0" * (-(110 + len(namez)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


def needs_initramfs(art: KernelArtifact) -> bool:
    if art.modules is None:
        return False
    values = art.config_values()
    if not values:
        return True
    return any(values.get(opt) != "y" for opt in BUILTIN_NEEDED)


def build_initramfs(art: KernelArtifact, dest: Path) -> Path:
    assert art.modules is not None
    busybox = next((p for p in BUSYBOX_CANDIDATES if p.exists()), None)
    if busybox is None:
        raise InfraError("static busybox not found (apt-get install busybox-static)")
    order = module_closure(art.modules, BOOT_MODULES)
    if not any(_modname(p) == "virtio_blk" for p in order) and \
            art.config_value("VIRTIO_BLK") != "y":
        raise InfraError(f"{art.spec}: kernel has no virtio_blk driver (module or built-in)")
    cpio = Cpio()
    for d in ("bin", "dev", "proc", "sys", "newroot", "modules"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.file("init", INIT_SCRIPT.encode(), 0o755)
    names = []
    for rel in order:
        name = _modname(rel) + ".ko"
        cpio.file(f"modules/{name}", _read_module(art.modules / rel))
        names.append(name)
    cpio.file("modules/order", ("\n".join(names) + "\n").encode())
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(cpio.finish(), compresslevel=6))
    tmp.rename(dest)
    return dest


def make_ext4(src: Path, dest: Path, label: str, *, slack: float = 1.25,
              extra_mb: int = 32, log_file: Path | None = None) -> Path:
    """An ext4 image of ``src`` (mke2fs -d), with features old kernels can mount rw."""
    size_mb = int(disk_usage(src) * slack / (1 << 20)) + extra_mb
    tmp = dest.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    proc.run(["mke2fs", "-q", "-F", "-t", "ext4", "-O", "^orphan_file,^metadata_csum_seed",
              "-E", "root_owner=0:0", "-L", label, "-d", src, tmp, f"{size_mb}M"],
             timeout=1800, log_file=log_file)
    tmp.rename(dest)
    return dest



def boot_files(art: KernelArtifact) -> BootFiles:
    """Initramfs and modules disk for ``art`` (built once, cached in its directory)."""
    with locked(art.root / "bootfiles"):
        return _boot_files(art)


def _boot_files(art: KernelArtifact) -> BootFiles:
    initrd = None
    mods = None
    if needs_initramfs(art):
        initrd = art.root / f"initramfs-v{INITRAMFS_VERSION}.cpio.gz"
        if not initrd.exists():
            build_initramfs(art, initrd)
    if art.modules is not None:
        mods = art.root / "modules.ext4"
        if not mods.exists():
            make_ext4(art.modules, mods, "bisector-mods", slack=1.15)
    return BootFiles(initrd=initrd, modules_disk=mods)
