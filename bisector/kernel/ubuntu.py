"""``ubuntu-mainline:<version>``: Ubuntu's mainline kernel builds.

The archive (``https://kernel.ubuntu.com/mainline/`` by default, overridable
with ``BISECTOR_UBUNTU_MAINLINE_URL``) is a plain directory listing:

* ``v5.7.1/`` … one folder per version, rc names like ``v5.7-rc3/``;
* old builds keep their files at the top of the version folder, newer ones in
  per-arch subfolders (``amd64/``) with a ``status`` file (``0`` = built);
* a folder may hold two builds of the same version (different timestamps in
  the package version): the newest complete one wins;
* a failed build has no ``linux-image`` .deb (or a non-zero ``status``):
  that is :class:`KernelUnavailable`, which a coarse bisection treats as SKIP.

Files are verified against ``CHECKSUMS`` (sha256) and, when gpgv and a
keyring holding the Kernel PPA key are configured
(``BISECTOR_UBUNTU_KEYRING``), ``CHECKSUMS.gpg`` is checked first.
"""

from __future__ import annotations

import html
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .. import proc
from ..errors import DownloadError, UserError
from ..paths import cache_dir
from .base import KernelArtifact, KernelEntry, KernelUnavailable
from .debs import artifact_from_debs
from .fetch import download, get_bytes

log = logging.getLogger(__name__)

DEFAULT_URL = "https://kernel.ubuntu.com/mainline/"
ARCH = "amd64"
FLAVOUR = "generic"
_VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)(?:\.(\d+))?(?:-rc(\d+))?/?$")
#: linux-image-unsigned-5.7.1-050701-generic_5.7.1-050701.202006071230_amd64.deb
#: (old builds: linux-image-4.15.0-041500-generic_4.15.0-041500.201801282230_amd64.deb)
_DEB = re.compile(
    r"^linux-(?P<kind>image-unsigned|image|modules)-(?P<rel>[0-9][^_]*)-(?P<flav>[a-z]+)"
    r"_(?P<ver>[^_]+)_(?P<arch>[a-z0-9]+)\.deb$")


def version_key(name: str) -> tuple[int, int, int, int]:
    """Sort key: v5.7-rc3 < v5.7 < v5.7.1."""
    m = _VERSION_DIR.match(name.rstrip("/"))
    if not m:
        return (0, 0, 0, 0)
    major, minor, patch, rc = m.groups()
    return (int(major), int(minor), int(patch or 0) * 1000 + (0 if rc else 999),
            int(rc or 0))


def links(page: str) -> list[str]:
    """hrefs of a directory listing, without sort/parent links."""
    out = []
    for href in re.findall(r'href="([^"]+)"', page, flags=re.IGNORECASE):
        href = html.unescape(href)
        if href.startswith(("?", "/", "../", "http:", "https:")):
            continue
        out.append(href)
    return out


def parse_checksums(text: str) -> dict[str, str]:
    """``filename → sha256`` from a CHECKSUMS file (sha1 lines are ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            out[Path(parts[1].lstrip("*")).name] = parts[0]
    return out


@dataclass
class Build:
    stamp: str  # package version, e.g. 5.7.1-050701.202006071230
    image: str | None = None
    modules: str | None = None
    extra: list[str] = field(default_factory=list)


@dataclass
class Listing:
    version: str
    base_url: str  # folder holding the debs and CHECKSUMS
    builds: dict[str, Build]
    status: str | None  # content of amd64/status in new layouts

    def best(self) -> Build | None:
        """The newest build that has an image, preferring builds with a modules package.

        Whether the modules are really needed is decided from the unpacked
        content (a modular kernel without its modules is refused there).
        """
        complete = [b for b in self.builds.values() if b.image is not None]
        if not complete:
            return None
        return max(complete, key=lambda b: (b.modules is not None, b.stamp))


class UbuntuMainlineSource:
    prefix = "ubuntu-mainline"

    def __init__(self, base_url: str | None = None, keyring: Path | None = None) -> None:
        self.base_url = (base_url or os.environ.get("BISECTOR_UBUNTU_MAINLINE_URL")
                         or DEFAULT_URL).rstrip("/") + "/"
        env_key = os.environ.get("BISECTOR_UBUNTU_KEYRING")
        self.keyring = keyring or (Path(env_key) if env_key else None)
        self.session = requests.Session()

    def versions(self) -> list[str]:
        page = get_bytes(self.base_url, self.session).decode("utf-8", errors="replace")
        names = {h.rstrip("/") for h in links(page) if _VERSION_DIR.match(h)}
        return sorted(names, key=version_key)

    def listing(self, version: str) -> Listing:
        url = f"{self.base_url}{version}/"
        try:
            page = get_bytes(url, self.session).decode("utf-8", errors="replace")
        except DownloadError as exc:
            if "HTTP 404" in str(exc):
                raise UserError(f"ubuntu-mainline:{version}: no such version at {self.base_url}"
                                ) from None
            raise
        hrefs = links(page)
        status = None
        if f"{ARCH}/" in hrefs:
            url = f"{url}{ARCH}/"
            hrefs = links(get_bytes(url, self.session).decode("utf-8", errors="replace"))
            if "status" in hrefs:
                try:
                    status = get_bytes(f"{url}status", self.session).decode().strip()
                except DownloadError:
                    status = None
        builds: dict[str, Build] = {}
        for name in hrefs:
            m = _DEB.match(Path(name).name)
            if not m or m.group("arch") != ARCH or m.group("flav") != FLAVOUR:
                continue
            b = builds.setdefault(m.group("ver"), Build(stamp=m.group("ver")))
            if m.group("kind").startswith("image"):
                # prefer the unsigned image when both exist
                if b.image is None or m.group("kind") == "image-unsigned":
                    b.image = Path(name).name
            else:
                b.modules = Path(name).name
        return Listing(version=version, base_url=url, builds=builds, status=status)

    def _checksums(self, listing: Listing) -> dict[str, str]:
        raw = get_bytes(f"{listing.base_url}CHECKSUMS", self.session)
        if self.keyring is not None:
            sig = get_bytes(f"{listing.base_url}CHECKSUMS.gpg", self.session)
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "CHECKSUMS").write_bytes(raw)
                (Path(tmp) / "CHECKSUMS.gpg").write_bytes(sig)
                try:
                    proc.run(["gpgv", "--keyring", self.keyring, Path(tmp) / "CHECKSUMS.gpg",
                              Path(tmp) / "CHECKSUMS"], timeout=60)
                except proc.CommandError as exc:
                    raise DownloadError(f"{listing.base_url}CHECKSUMS: bad GPG signature "
                                        f"({exc.tail(1)})") from exc
        else:
            log.info("%sCHECKSUMS: GPG not checked (set BISECTOR_UBUNTU_KEYRING)",
                     listing.base_url)
        return parse_checksums(raw.decode("utf-8", errors="replace"))

    def resolve(self, ref: str) -> KernelArtifact:
        version = ref if ref.startswith("v") else f"v{ref}"
        if not _VERSION_DIR.match(version):
            raise UserError(f"ubuntu-mainline:{ref}: expected a version like v5.7.1 or v5.7-rc3")
        listing = self.listing(version)
        if listing.status not in (None, "0"):
            raise KernelUnavailable(f"ubuntu-mainline:{version}: the {ARCH} build failed "
                                    f"(status {listing.status})")
        build = listing.best()
        if build is None or build.image is None:
            raise KernelUnavailable(f"ubuntu-mainline:{version}: no complete {ARCH} "
                                    f"{FLAVOUR} build (failed build?) at {listing.base_url}")
        sums = self._checksums(listing)
        debs = []
        for name in (build.image, build.modules):
            if name is None:
                continue
            if name not in sums:
                raise DownloadError(f"{listing.base_url}CHECKSUMS does not list {name}")
            debs.append(download(f"{listing.base_url}{name}",
                                 cache_dir() / "downloads" / name, sums[name],
                                 session=self.session))
        meta = {"build": build.stamp, "url": listing.base_url, "distro": "ubuntu-mainline"}
        # mainline builds are vanilla kernels: the upstream tag is the version itself
        return artifact_from_debs(f"ubuntu-mainline:{version}", debs, meta,
                                  kind="ubuntu-mainline", upstream=version)

    def available(self) -> list[KernelEntry]:
        return [KernelEntry(f"ubuntu-mainline:{v}", v, upstream=v) for v in self.versions()]
