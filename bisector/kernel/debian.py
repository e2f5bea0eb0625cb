"""``debian:<abi>``: Debian's prebuilt kernels from its archive.

Resolution follows the archive's chain of trust: ``InRelease`` (GPG-verified
with gpgv and the Debian archive keyring when both are present) gives the
sha256 of ``Packages.xz``; ``Packages`` gives the sha256 of the .deb; the .deb
is verified before it is unpacked.  Several suites are searched (bookworm,
bookworm-updates, bookworm-security by default) and the newest package
version of the requested ABI wins.

Archives are configurable (``BISECTOR_DEBIAN_ARCHIVES``: space-separated
``URL=suite,suite`` items), so a snapshot.debian.org timestamp or a local
mirror works the same way.
"""

from __future__ import annotations

import json
import logging
import lzma
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from debian.deb822 import Packages
from debian.debian_support import Version

from .. import proc
from ..errors import DownloadError, UserError
from ..paths import cache_dir
from .base import KernelArtifact, KernelEntry
from .debs import artifact_from_debs
from .fetch import download, get_bytes

log = logging.getLogger(__name__)

DEFAULT_ARCHIVES = ("http://deb.debian.org/debian=bookworm,bookworm-updates "
                    "http://deb.debian.org/debian-security=bookworm-security")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
INDEX_TTL = 6 * 3600
ARCH = "amd64"
PKG_RE = re.compile(
    r"^linux-image-(?P<abi>\d+\.\d+(?:\.\d+)?(?:-\d+|\+deb\d+))-(?P<flavour>(?:[a-z]+-)?amd64)"
    r"-unsigned$")


@dataclass(frozen=True)
class Archive:
    url: str
    suites: tuple[str, ...]


@dataclass(frozen=True)
class Package:
    name: str
    abi: str
    flavour: str
    version: str
    filename: str
    sha256: str
    size: int
    archive: str
    suite: str

    @property
    def url(self) -> str:
        return f"{self.archive.rstrip('/')}/{self.filename}"

    @property
    def upstream(self) -> str:
        """``6.1.192-2`` → ``v6.1.192`` (the upstream tag the package is based on)."""
        up = self.version.split("-")[0].split("~")[0]
        return "v" + up


def parse_archives(text: str) -> list[Archive]:
    out = []
    for item in text.split():
        url, sep, suites = item.partition("=")
        if not sep or not suites:
            raise UserError(f"BISECTOR_DEBIAN_ARCHIVES: {item!r}: expected URL=suite[,suite]")
        out.append(Archive(url, tuple(s for s in suites.split(",") if s)))
    return out


def strip_clearsign(text: str) -> str:
    """The signed body of an InRelease file (armor removed, dash-escaping undone)."""
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return text
    body = text.split("\n\n", 1)[1]
    body = body.split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    return "\n".join(ln[2:] if ln.startswith("- ") else ln for ln in body.splitlines()) + "\n"


def release_sha256(release_text: str) -> dict[str, tuple[str, int]]:
    """``path → (sha256, size)`` from the SHA256 section of a Release file."""
    out: dict[str, tuple[str, int]] = {}
    in_sha = False
    for line in release_text.splitlines():
        if not line.startswith(" "):
            in_sha = line.startswith("SHA256:")
            continue
        if in_sha:
            parts = line.split()
            if len(parts) == 3:
                out[parts[2]] = (parts[0], int(parts[1]))
    return out


class DebianSource:
    prefix = "debian"

    def __init__(self, archives: list[Archive] | None = None,
                 keyring: Path | None = KEYRING) -> None:
        self.archives = archives or parse_archives(
            os.environ.get("BISECTOR_DEBIAN_ARCHIVES", DEFAULT_ARCHIVES))
        env_keyring = os.environ.get("BISECTOR_DEBIAN_KEYRING")
        if env_keyring is not None:
            # an explicit setting wins: a keyring path, or "none" for an archive that is
            # not signed (a local mirror); the Packages and .deb sha256 are still checked
            keyring = None if env_keyring == "none" else Path(env_keyring)
            if keyring is not None and not keyring.exists():
                raise UserError(f"BISECTOR_DEBIAN_KEYRING={env_keyring}: no such keyring")
        self.keyring = keyring if keyring is not None and keyring.exists() else None
        self.session = requests.Session()

    # ---------------------------------------------------------------- index
    def _verified_release(self, archive: Archive, suite: str) -> str:
        base = f"{archive.url.rstrip('/')}/dists/{suite}"
        try:
            signed = get_bytes(f"{base}/InRelease", self.session).decode()
        except DownloadError:
            if self.keyring is not None:
                raise
            return get_bytes(f"{base}/Release", self.session).decode()
        if self.keyring is not None:
            with tempfile.NamedTemporaryFile("w", suffix=".InRelease") as fh:
                fh.write(signed)
                fh.flush()
                try:
                    proc.run(["gpgv", "--keyring", self.keyring, fh.name], timeout=60)
                except proc.CommandError as exc:
                    raise DownloadError(f"{base}/InRelease: GPG signature check failed "
                                        f"({exc.tail(1)})") from exc
        else:
            log.warning("%s/InRelease: not GPG-verified (no keyring)", base)
        return strip_clearsign(signed)

    def _suite_packages(self, archive: Archive, suite: str, refresh: bool) -> list[Package]:
        key = re.sub(r"[^A-Za-z0-9]+", "_", f"{archive.url}_{suite}")
        cache = cache_dir() / "debian-index" / f"{key}.json"
        if not refresh and cache.exists() and time.time() - cache.stat().st_mtime < INDEX_TTL:
            return [Package(**p) for p in json.loads(cache.read_text())]
        release = self._verified_release(archive, suite)
        sums = release_sha256(release)
        rel = f"main/binary-{ARCH}/Packages.xz"
        if rel not in sums:
            raise DownloadError(f"{archive.url} {suite}: Release lists no {rel}")
        sha, size = sums[rel]
        with tempfile.TemporaryDirectory() as tmp:
            path = download(f"{archive.url.rstrip('/')}/dists/{suite}/{rel}",
                            Path(tmp) / "Packages.xz", sha, size=size, session=self.session)
            text = lzma.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        pkgs = []
        for para in Packages.iter_paragraphs(text.splitlines(keepends=True), use_apt_pkg=False):
            m = PKG_RE.match(para.get("Package", ""))
            if not m:
                continue
            pkgs.append(Package(name=para["Package"], abi=m.group("abi"),
                                flavour=m.group("flavour"), version=para["Version"],
                                filename=para["Filename"], sha256=para["SHA256"],
                                size=int(para["Size"]), archive=archive.url, suite=suite))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps([p.__dict__ for p in pkgs]))
        return pkgs

    def packages(self, refresh: bool = False) -> list[Package]:
        out: list[Package] = []
        for archive in self.archives:
            for suite in archive.suites:
                out.extend(self._suite_packages(archive, suite, refresh))
        return out

    # ---------------------------------------------------------------- API
    def find(self, ref: str) -> Package:
        m = re.fullmatch(r"(?P<abi>[0-9][0-9.]*(?:-\d+|\+deb\d+))(?:-(?P<flavour>[a-z]+))?", ref)
        if not m:
            raise UserError(f"debian:{ref}: expected an ABI like 6.1.0-56 or 6.12.115+deb12 "
                            "(optionally -cloud / -rt)")
        flavour = f"{m.group('flavour')}-amd64" if m.group("flavour") else "amd64"
        pkgs = self.packages()
        hits = [p for p in pkgs if p.abi == m.group("abi") and p.flavour == flavour]
        if not hits:
            known = sorted({p.abi for p in pkgs if p.flavour == "amd64"}, key=Version)
            raise UserError(f"debian:{ref}: no linux-image-{m.group('abi')}-{flavour}-unsigned "
                            f"in the configured archives (available: {', '.join(known)})")
        return max(hits, key=lambda p: Version(p.version))

    def resolve(self, ref: str) -> KernelArtifact:
        pkg = self.find(ref)
        deb = download(pkg.url, cache_dir() / "downloads" / Path(pkg.filename).name,
                       pkg.sha256, size=pkg.size, session=self.session)
        meta = {"package": pkg.name, "version": pkg.version, "sha256": pkg.sha256,
                "url": pkg.url, "suite": pkg.suite, "distro": "debian"}
        return artifact_from_debs(f"debian:{ref}", [deb], meta, kind="debian",
                                  upstream=pkg.upstream)

    def available(self) -> list[KernelEntry]:
        best: dict[str, Package] = {}
        for p in self.packages():
            if p.flavour != "amd64":
                continue
            if p.abi not in best or Version(p.version) > Version(best[p.abi].version):
                best[p.abi] = p
        return [KernelEntry(f"debian:{abi}", best[abi].version,
                            f"{best[abi].suite}, upstream {best[abi].upstream}",
                            upstream=best[abi].upstream)
                for abi in sorted(best, key=Version)]


