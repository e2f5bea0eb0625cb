"""Turn kernel .deb packages into a :class:`KernelArtifact`.

Shared by every .deb-based source (Debian archive, Ubuntu mainline, local
files).  Extraction goes through ``dpkg-deb --fsys-tarfile`` (it understands
every compression Debian and Ubuntu use, zstd included) and Python's tarfile
with the ``data`` filter, so a hostile archive cannot write outside the
destination; unsafe links are dropped, not followed.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .. import proc
from ..errors import UserError
from ..paths import cache_dir, locked, os_error, require_free
from .base import KernelArtifact, KernelUnavailable
from .fetch import sha256_file

log = logging.getLogger(__name__)


def _safe_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError as exc:
        if member.issym() or member.islnk():
            log.debug("dropping unsafe link %s: %s", member.name, exc)
            return None
        raise


def extract_deb(deb: Path, dest: Path) -> None:
    """Unpack the data part of ``deb`` into ``dest`` with path checks.

    A full disk is an infrastructure error, not "not a valid .deb": dpkg-deb's
    own complaint and the errno of a failed write are both looked at."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, suffix=".tar") as tmp:
        with open(tmp.name, "wb") as out:
            try:
                proc.run(["dpkg-deb", "--fsys-tarfile", deb], stdout_file=out, timeout=600)
            except proc.CommandError as exc:
                if "No space left on device" in exc.output:
                    raise os_error(OSError(28, "No space left on device", str(dest)),
                                   f"unpacking {deb.name}") from exc
                raise UserError(f"{deb}: not a valid .deb package ({exc.tail(1)})") from exc
        try:
            with tarfile.open(tmp.name) as tar:
                tar.extractall(dest, filter=_safe_filter)
        except OSError as exc:
            if exc.errno is not None:
                raise os_error(exc, f"unpacking {deb.name}") from exc
            raise UserError(f"{deb}: cannot unpack: {exc}") from exc
        except tarfile.TarError as exc:
            raise UserError(f"{deb}: cannot unpack: {exc}") from exc


def content_key(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode() + b"\0" + sha256_file(f).encode() + b"\0")
    return h.hexdigest()[:20]


def artifact_from_debs(spec: str, debs: list[Path], meta: Mapping[str, object] | None = None,
                       *, kind: str = "debs", upstream: str | None = None) -> KernelArtifact:
    """Unpack image (+ modules) debs once, keyed by their content."""
    root = cache_dir() / "kernels" / kind / content_key(debs)
    with locked(root):
        art = _unpack(spec, debs, root, meta)
    art.upstream = upstream
    return art


def _unpack(spec: str, debs: list[Path], root: Path,
            meta: Mapping[str, object] | None) -> KernelArtifact:
    cached = KernelArtifact.load(root)
    if cached is not None:
        cached.spec = spec
        return cached
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # a kernel package unpacks to a few times its (compressed) size
    require_free(root.parent, 4 * sum(d.stat().st_size for d in debs) + (64 << 20),
                 f"unpacking {spec}")
    try:
        return _unpack_into(spec, debs, root, tmp, meta)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no <key>.tmp/ litter, whatever happened


def _unpack_into(spec: str, debs: list[Path], root: Path, tmp: Path,
                 meta: Mapping[str, object] | None) -> KernelArtifact:
    tree = tmp / "tree"
    for deb in debs:
        extract_deb(deb, tree)
    final_tree = root / "tree"
    art = _assemble(spec, tree, final_tree, root, dict(meta or {}))
    art.meta["debs"] = [d.name for d in debs]
    if art.modules is None and art.config_value("VIRTIO_BLK") == "m":
        shutil.rmtree(tmp, ignore_errors=True)
        raise KernelUnavailable(f"kernel {spec}: modular kernel ({art.release}) but no "
                                "modules in the package(s) (missing linux-modules .deb?)")
    if art.modules is not None:
        depmod(tree, art.release)
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(final_tree, ignore_errors=True)
    tree.rename(final_tree)
    shutil.rmtree(tmp, ignore_errors=True)
    art.save()
    return art


def _assemble(spec: str, tree: Path, final_tree: Path, root: Path,
              meta: dict[str, object]) -> KernelArtifact:
    images = sorted(p for p in (tree / "boot").glob("vmlinu[xz]-*") if p.is_file())
    if not images:
        raise UserError(f"kernel {spec}: no boot/vmlinuz-* in the package(s); "
                        "is this a linux-image .deb?")
    image = images[0]
    with image.open("rb") as fh:
        head = fh.read(0x210)
    # a bzImage (setup header "HdrS" at 0x202) or an ELF vmlinux; anything else would
    # only fail later, as a QEMU error that looks like a boot failure
    if head[0x202:0x206] != b"HdrS" and not head.startswith(b"\x7fELF"):
        raise KernelUnavailable(f"kernel {spec}: {image.name} in the package is not a "
                                f"kernel image ({len(head)}+ bytes, no bzImage header)")
    release = image.name.split("-", 1)[1]
    mods = None
    for base in (tree / "lib" / "modules", tree / "usr" / "lib" / "modules"):
        if (base / release).is_dir():
            mods = final_tree / (base / release).relative_to(tree)
            break
    config = tree / "boot" / f"config-{release}"
    return KernelArtifact(
        spec=spec, release=release, image=final_tree / image.relative_to(tree),
        modules=mods,
        config=(final_tree / config.relative_to(tree)) if config.exists() else None,
        root=root, meta=meta,
    )


def depmod(tree: Path, release: str) -> None:
    """Debian's postinst runs depmod; we have no postinst, so we run it here."""
    base = tree if (tree / "lib" / "modules" / release).is_dir() else tree / "usr"
    system_map = tree / "boot" / f"System.map-{release}"
    argv: list[str | Path] = ["depmod", "-b", base]
    if system_map.exists() and system_map.stat().st_size > 1000:
        argv += ["-F", system_map]
    argv.append(release)
    proc.run(argv, timeout=300)
