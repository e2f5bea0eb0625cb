"""``local:<path>``: a kernel the user already has.

* a ``linux-image`` .deb (optionally with its ``linux-modules`` .deb: give a
  directory holding both, or ``local:image.deb,modules.deb``);
* a kernel image file (bzImage / vmlinuz); ``config``/``System.map`` next to
  it are used when present.  Without modules it must have virtio and ext4
  built in (a ``git:`` build's kernel does).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import UserError
from ..paths import cache_dir
from .base import KernelArtifact, KernelEntry
from .bootfiles import read_bzimage_header
from .debs import artifact_from_debs, content_key


def _bzimage_release(path: Path) -> str:
    """The version string embedded in a bzImage header (what uname -r prints).

    Only the first 64 KiB are read: the string lives in the real-mode setup code.
    """
    with path.open("rb") as fh:
        header = read_bzimage_header(fh.read(0x10000))
    if header is None:
        raise UserError(f"local:{path}: not a bzImage (no 'HdrS' boot header) nor a .deb")
    return header.release or "unknown"


class LocalSource:
    prefix = "local"

    def resolve(self, ref: str) -> KernelArtifact:
        paths = [Path(p).expanduser().resolve() for p in ref.split(",") if p]
        for p in paths:
            if not p.exists():
                raise UserError(f"local:{ref}: {p} does not exist")
        if len(paths) == 1 and paths[0].is_dir():
            paths = sorted(paths[0].glob("*.deb"))
            if not paths:
                raise UserError(f"local:{ref}: no .deb files in that directory")
        if all(p.suffix == ".deb" for p in paths):
            return artifact_from_debs(f"local:{ref}", paths, {"distro": "local"}, kind="local")
        if len(paths) != 1:
            raise UserError(f"local:{ref}: give one kernel image or one or more .deb files")
        return self._image(ref, paths[0])

    def _image(self, ref: str, image: Path) -> KernelArtifact:
        release = _bzimage_release(image)
        root = cache_dir() / "kernels" / "local" / content_key([image])
        cached = KernelArtifact.load(root)
        if cached is not None:
            cached.spec = f"local:{ref}"
            return cached
        root.mkdir(parents=True, exist_ok=True)
        dst = root / "bzImage"
        shutil.copyfile(image, dst)
        config = None
        for cand in (image.parent / ".config", image.parent / "config",
                     image.parent.parent.parent.parent / ".config"):
            if cand.is_file():
                config = root / "config"
                shutil.copyfile(cand, config)
                break
        art = KernelArtifact(spec=f"local:{ref}", release=release, image=dst, modules=None,
                             config=config, root=root, meta={"distro": "local",
                                                             "source_path": str(image)})
        art.save()
        return art

    def available(self) -> list[KernelEntry]:
        return []
