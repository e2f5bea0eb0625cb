"""The guest root image: built once, shared read-only, one overlay per run.

``vm-images/<name>/`` is the recipe (suite, package list, init, sshd config),
shipped as package data (:mod:`bisector.resources`).
The image is built with mmdebstrap from Debian's archive into a directory,
given a fresh SSH host key and client key, and turned into an ext4 disk with
``mke2fs -d``.  The cache key is a hash of the recipe, so an edited recipe
rebuilds and an unchanged one never does.  Every boot gets a qcow2 overlay
that is deleted afterwards, so no run can leak state into the next.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import proc, resources
from .errors import InfraError
from .kernel.bootfiles import make_ext4
from .paths import cache_dir, locked
from .progress import note

log = logging.getLogger(__name__)

BUILDER_VERSION = "1"


def recipe_dir(name: str = "bookworm") -> Path:
    """The recipe of image ``name``: shipped with the package (``vm-images/``), or in
    ``$BISECTOR_IMAGES``.  An unknown name is a :class:`UserError` listing the recipes,
    so ``image build --name`` cannot cache an image under a name no recipe has."""
    return resources.image_recipe_dir(name)


def recipe_hash(path: Path) -> str:
    h = hashlib.sha256(f"builder={BUILDER_VERSION}\n".encode())
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class GuestImage:
    root: Path

    @property
    def disk(self) -> Path:
        return self.root / "rootfs.ext4"

    @property
    def host_key_pub(self) -> Path:
        return self.root / "ssh_host_ed25519_key.pub"

    @property
    def client_key(self) -> Path:
        return self.root / "id_ed25519"

    def overlay(self, dest: Path) -> Path:
        """A copy-on-write overlay for one run (the base image is never written)."""
        proc.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", self.disk,
                  dest], timeout=60)
        return dest


def packages(recipe: Path) -> list[str]:
    out = []
    for line in (recipe / "packages.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def ensure_image(name: str = "bookworm", *, rebuild: bool = False) -> GuestImage:
    """The cached image for the recipe, building it if needed."""
    recipe = recipe_dir(name)
    key = recipe_hash(recipe)
    root = cache_dir() / "images" / f"{name}-{key}"
    img = GuestImage(root)
    with locked(root):
        if img.disk.exists() and (root / "image.json").exists() and not rebuild:
            return img
        return build(recipe, root)


def build(recipe: Path, root: Path) -> GuestImage:
    cfg = yaml.safe_load((recipe / "recipe.yaml").read_text())
    mirror = os.environ.get("BISECTOR_DEBIAN_MIRROR", cfg["mirror"])
    tmp = root.with_name(root.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    blog = tmp / "build.log"
    rootfs = tmp / "rootfs"
    t0 = time.monotonic()
    note(f"building guest image {root.name} (mmdebstrap {cfg['suite']}, "
         f"{len(packages(recipe))} packages; log: {blog})")
    try:
        proc.run(["mmdebstrap", f"--variant={cfg['variant']}", "--components=main",
                  "--include=" + ",".join(packages(recipe)),
                  "--dpkgopt=path-exclude=/usr/share/doc/*",
                  "--dpkgopt=path-exclude=/usr/share/man/*",
                  "--dpkgopt=path-exclude=/usr/share/locale/*",
                  cfg["suite"], rootfs, mirror],
                 timeout=3600, log_file=blog)
    except proc.CommandError as exc:
        raise InfraError(f"guest image build failed in mmdebstrap: {exc.tail(1)} "
                         f"(log: {blog})") from exc
    _customize(recipe, rootfs, tmp, blog)
    note("creating the image's ext4 disk")
    make_ext4(rootfs, tmp / "rootfs.ext4", "bisector-root", slack=float(cfg["size_slack"]),
              extra_mb=256, log_file=blog)
    shutil.rmtree(rootfs)
    (tmp / "image.json").write_text(json.dumps({
        "recipe": str(recipe), "suite": cfg["suite"], "mirror": mirror,
        "packages": packages(recipe), "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.monotonic() - t0, 1)}, indent=2))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    note(f"guest image ready in {time.monotonic() - t0:.0f}s: {root}")
    return GuestImage(root)


def _customize(recipe: Path, rootfs: Path, out: Path, blog: Path) -> None:
    """Keys, init, sshd config; strip what a test VM never needs."""
    for old in (rootfs / "etc" / "ssh").glob("ssh_host_*"):
        old.unlink()
    hostkey = rootfs / "etc" / "ssh" / "ssh_host_ed25519_key"
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bisector-guest",
              "-f", hostkey], timeout=60, log_file=blog)
    shutil.copyfile(hostkey.with_suffix(".pub"), out / "ssh_host_ed25519_key.pub")
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bisector-client",
              "-f", out / "id_ed25519"], timeout=60, log_file=blog)
    ssh_dir = rootfs / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(out / "id_ed25519.pub", ssh_dir / "authorized_keys")
    (ssh_dir / "authorized_keys").chmod(0o600)
    shutil.copyfile(recipe / "sshd_config", rootfs / "etc" / "ssh" / "sshd_config")
    init = rootfs / "sbin" / "bisector-init"
    shutil.copyfile(recipe / "bisector-init", init)
    init.chmod(0o755)
    (rootfs / "etc" / "hostname").write_text("bisector\n")
    (rootfs / "etc" / "hosts").write_text("127.0.0.1 localhost bisector\n::1 localhost\n")
    (rootfs / "etc" / "fstab").write_text("# root and modules are mounted by bisector-init\n")
    (rootfs / "lib" / "modules").mkdir(parents=True, exist_ok=True)
    (rootfs / "root" / "repro").mkdir(exist_ok=True)
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (rootfs / junk).glob("*"):
            if p.is_file():
                p.unlink()
