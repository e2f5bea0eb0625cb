"""A Debian archive's indexes, read along its chain of trust.

``InRelease`` is GPG-verified (gpgv, the Debian archive keyrings) and only the
text its signature covers is parsed; it gives the sha256 of ``Packages.xz``,
which gives the sha256 of each kernel .deb (:class:`~bisector.kernel.
debian_packages.Package`).  Both the live archive and snapshot.debian.org's
past archives are read through :class:`ArchiveIndex`; see
:mod:`bisector.kernel.debian` for the whole picture.
"""

from __future__ import annotations

import json
import logging
import lzma
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import requests
from debian.deb822 import Packages

from .. import proc
from ..errors import DownloadError, UserError
from ..paths import cache_dir
from .debian_packages import ARCH, PKG_RE, Archive, Package
from .fetch import download, get_bytes

log = logging.getLogger(__name__)

#: the current keys, and the retired ones that signed older releases (snapshot's indexes)
KEYRINGS = (Path("/usr/share/keyrings/debian-archive-keyring.gpg"),
            Path("/usr/share/keyrings/debian-archive-removed-keys.gpg"))
INDEX_TTL = 6 * 3600


def strip_clearsign(text: str) -> str:
    """The body of a clearsigned InRelease that is *not* verified (no keyring): armor
    removed, dash-escaping undone.  A verified one is parsed from gpgv's output instead."""
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return text
    body = text.split("\n\n", 1)[1]
    body = body.split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    return "\n".join(ln[2:] if ln.startswith("- ") else ln for ln in body.splitlines()) + "\n"


def signature_problem(returncode: int, status: list[list[str]]) -> str | None:
    """Why gpgv's verdict (``--status-fd`` lines, keyword first) is not "signed by a key we
    trust", or None.

    Debian signs each InRelease with several keys; a keyring that lacks one of them
    (a key newer than the installed keyring) makes gpgv exit 2 although another
    signature is good.  That is accepted, as apt does; a bad signature, a second
    signed message in the file, or any other error is not.
    """
    words = [s[0] for s in status if s]
    if "BADSIG" in words:
        return "bad signature"
    if words.count("PLAINTEXT") > 1 or "ERROR" in words or "FAILURE" in words:
        return "not one signed message"
    if "VALIDSIG" not in words:
        return "no good signature by a key in the keyrings"
    for s in status:
        if s[0] == "ERRSIG" and (len(s) < 7 or s[6] != "9"):  # 9: no public key
            return "a signature could not be checked"
    if returncode != 0 and "NO_PUBKEY" not in words:
        return f"gpgv exited {returncode}"
    return None


def verified_content(signed: bytes, keyrings: Sequence[Path], what: str) -> bytes:
    """The text a clearsigned file's signature covers, as gpgv returns it; DownloadError
    if no key of ``keyrings`` signed it.  Nothing outside the signed block survives."""
    argv: list[str | Path] = ["gpgv", "--status-fd", "2", "--output", "-"]
    for k in keyrings:
        argv += ["--keyring", k]
    argv.append("-")
    r = proc.run_bytes(argv, input=signed, timeout=60, check=False)
    status = [ln.split()[1:] for ln in r.stderr.splitlines() if ln.startswith("[GNUPG:] ")]
    problem = signature_problem(r.returncode, status)
    if problem is not None:
        human = [ln for ln in r.stderr.splitlines() if ln.startswith("gpgv:")]
        raise DownloadError(f"{what}: GPG signature check failed ({problem}"
                            + (f"; {human[-1]}" if human else "") + ")")
    return r.stdout


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


def keyrings_for(given: Path | Sequence[Path] | None) -> tuple[Path, ...]:
    """The keyrings gpgv checks with: ``BISECTOR_DEBIAN_KEYRING`` (``a.gpg:b.gpg``, or
    ``none`` for an unsigned local archive) wins over ``given``; of the defaults, those
    installed (the removed-keys keyring may not be)."""
    env = os.environ.get("BISECTOR_DEBIAN_KEYRING")
    if env is not None:
        paths = () if env == "none" else tuple(Path(p) for p in env.split(os.pathsep) if p)
        for p in paths:
            if not p.is_file():
                raise UserError(f"BISECTOR_DEBIAN_KEYRING={env}: no such keyring {p}")
    else:
        paths = (given,) if isinstance(given, Path) else tuple(given or ())
        paths = tuple(p for p in paths if p.is_file())
    # gpgv looks a name without a slash up in its home directory: make every path absolute
    return tuple(p.absolute() for p in paths)


class ArchiveIndex:
    """The kernel packages of an archive's suites, verified with ``keyrings`` (none: read
    unverified, with a warning) and cached under ``debian-index``."""

    def __init__(self, keyrings: tuple[Path, ...], session: requests.Session) -> None:
        self.keyrings = keyrings
        self.session = session

    def verified_release(self, archive: Archive, suite: str) -> str:
        """The suite's Release text, as its signature covers it when there are keyrings."""
        base = f"{archive.url.rstrip('/')}/dists/{suite}"
        try:
            signed = get_bytes(f"{base}/InRelease", self.session)
        except DownloadError:
            if self.keyrings:
                raise
            return get_bytes(f"{base}/Release", self.session).decode()
        if not self.keyrings:
            log.warning("%s/InRelease: not GPG-verified (no keyring)", base)
            return strip_clearsign(signed.decode())
        return verified_content(signed, self.keyrings, f"{base}/InRelease").decode()

    def suite_packages(self, archive: Archive, suite: str, refresh: bool,
                       ttl: float | None = INDEX_TTL) -> list[Package]:
        """The kernel packages of one suite (``ttl`` None: the index never changes, as a
        snapshot's does not)."""
        key = re.sub(r"[^A-Za-z0-9]+", "_", f"{archive.url}_{suite}")
        cache = cache_dir() / "debian-index" / f"{key}.json"
        if not refresh and cache.exists() and (
                ttl is None or time.time() - cache.stat().st_mtime < ttl):
            return [Package(**p) for p in json.loads(cache.read_text())]
        release = self.verified_release(archive, suite)
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

    def packages(self, archives: Sequence[Archive], refresh: bool = False) -> list[Package]:
        """The kernel packages of every suite of ``archives``, in that order."""
        out: list[Package] = []
        for archive in archives:
            for suite in archive.suites:
                out.extend(self.suite_packages(archive, suite, refresh))
        return out
