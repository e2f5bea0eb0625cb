"""Whole local kernel archives (real .debs) laid out as Debian and Ubuntu mainline serve them.

Built on :mod:`tests.fakes.archive`: every kernel is a genuine .deb made with
dpkg-deb, so the fetchers download, verify (sha256 from ``Packages`` /
``CHECKSUMS``) and unpack them as they would from the real archives.  Serve
the returned directory with :func:`tests.fakes.archive.serve`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.fakes.archive import build_deb, debian_archive, fake_kernel, sha256


def config_text(options: Iterable[str]) -> bytes:
    """A kernel .config with ``options`` built in (``NET_NS`` → ``CONFIG_NET_NS=y``)."""
    return "".join(f"CONFIG_{o.removeprefix('CONFIG_')}=y\n" for o in options).encode()


def debian_kernels(root: Path, work: Path, kernels: Mapping[int, str], config: bytes,
                   suite: str = "bookworm") -> Path:
    """``root``: an archive with ``linux-image-6.1.0-<abi>-amd64-unsigned`` for each
    ``abi → Debian version`` (``54 → "6.1.190-1"``); the image's bytes name its release."""
    debs = []
    for abi, ver in kernels.items():
        rel = f"6.1.0-{abi}-amd64"
        name = f"linux-image-{rel}-unsigned"
        deb = build_deb(work / f"{name}_{ver}_amd64.deb", name, ver,
                        {f"boot/vmlinuz-{rel}": fake_kernel(b"kernel " + rel.encode()),
                         f"boot/config-{rel}": config})
        debs.append((deb, name, ver))
    debian_archive(root, suite, debs)
    return root


_VERSION = re.compile(r"^v(\d+)\.(\d+)(?:\.(\d+))?(?:-rc(\d+))?$")


def mainline_release(version: str) -> tuple[str, str]:
    """``v5.7-rc2`` → (``5.7.0-050700rc2-generic``, package version
    ``5.7.0-050700rc2.202001010000``), the way kernel.ubuntu.com names its builds."""
    m = _VERSION.match(version)
    if m is None:
        raise ValueError(f"not a mainline version: {version}")
    major, minor, patch, rc = m.groups()
    base = f"{major}.{minor}.{patch or 0}"
    abi = f"{int(major):02d}{int(minor):02d}{int(patch or 0):02d}" + (f"rc{rc}" if rc else "")
    return f"{base}-{abi}-generic", f"{base}-{abi}.202001010000"


def mainline_kernels(root: Path, versions: Iterable[str], config: bytes,
                     failed: Iterable[str] = ()) -> Path:
    """``root``: a mainline archive in the current layout (``vX/amd64/`` with a
    ``status`` file and ``CHECKSUMS``), an image and a modules .deb per version;
    a version in ``failed`` is a failed build (status 2, no .debs)."""
    failed = set(failed)
    for version in versions:
        folder = root / version / "amd64"
        folder.mkdir(parents=True)
        if version in failed:
            (folder / "status").write_text("2\n")
            (folder / "CHECKSUMS").write_text("")
            continue
        rel, stamp = mainline_release(version)
        img = build_deb(folder / f"linux-image-unsigned-{rel}_{stamp}_amd64.deb",
                        f"linux-image-unsigned-{rel}", stamp,
                        {f"boot/vmlinuz-{rel}": fake_kernel(b"kernel " + rel.encode()),
                         f"boot/config-{rel}": config})
        mods = build_deb(folder / f"linux-modules-{rel}_{stamp}_amd64.deb",
                         f"linux-modules-{rel}", stamp,
                         {f"lib/modules/{rel}/modules.order": b""})
        # build_deb's staging directories must not be in the listing
        for d in (folder / f".{img.name}.root", folder / f".{mods.name}.root"):
            shutil.rmtree(d, ignore_errors=True)
        lines = ["# Checksums-Sha256:"] + [f"{sha256(d)}  {d.name}" for d in (img, mods)]
        (folder / "CHECKSUMS").write_text("\n".join(lines) + "\n")
        (folder / "status").write_text("0\n")
    return root

