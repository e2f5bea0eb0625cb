"""snapshot.debian.org: every Debian package ever published, for ABIs the live archive dropped.

The live archive carries only the current kernels of each suite; a bisection
between ``debian:6.1.0-47`` and ``debian:6.1.0-56`` needs the old ones too.
snapshot.debian.org keeps them, and its machine-readable API
(``/mr/…``, see https://snapshot.debian.org/) says where:

* ``/mr/binary/<package>/`` lists the versions a binary package had;
* ``/mr/binary/<package>/<version>/binfiles?fileinfo=1`` gives, per
  architecture, the file's SHA1 (snapshot's content address) and where it was
  first seen: ``archive_name`` (``debian``, ``debian-security``), ``first_seen``
  (a snapshot timestamp), ``path`` and ``name``;
* ``/file/<sha1>`` serves the bytes.

The API itself is not signed, so its SHA1 only *locates* a file.  What a
download is checked against comes from the archive as it was at
``first_seen`` (``/archive/<archive_name>/<first_seen>/dists/<suite>/``): its
``InRelease``, GPG-verified with the Debian keyrings (retired releases are
signed by keys in ``debian-archive-removed-keys.gpg``), gives the sha256 of
``Packages.xz``, which gives the sha256 of the .deb.  That part is the same
chain of trust as the live archive's and lives in :mod:`bisector.kernel.debian`;
this module is the API client and the guess of which suites to look in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from ..errors import DownloadError
from .fetch import TIMEOUT

DEFAULT_SNAPSHOT = "https://snapshot.debian.org"

#: Debian release number → codename (the names suites and version suffixes use)
CODENAMES = {8: "jessie", 9: "stretch", 10: "buster", 11: "bullseye", 12: "bookworm",
             13: "trixie", 14: "forky", 15: "duke"}
#: upstream series → the release it is the kernel of, for ABIs that do not say
#: (``6.1.0-47`` is bookworm's; ``6.12.41+deb13`` says trixie itself)
SERIES = {"3.16": 8, "4.9": 9, "4.19": 10, "5.10": 11, "6.1": 12, "6.12": 13}

# what the API hands back goes into URLs: accept only the shapes snapshot uses
_SHA1 = re.compile(r"[0-9a-f]{40}")
_STAMP = re.compile(r"\d{8}T\d{6}Z")
_ARCHIVE = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True)
class SeenFile:
    """One place a file was first seen in (one ``fileinfo`` entry of ``binfiles``)."""

    sha1: str
    archive_name: str
    first_seen: str
    path: str
    name: str
    size: int


def release_of(abi: str, version: str) -> int | None:
    """The Debian release a kernel package belongs to, from its version or its ABI.

    The version says it for backports and stable updates (``6.12.22-1~bpo12+1``,
    ``6.1.119-1~deb11u1``); the ABI for the ``+debN`` / ``0.debN`` names; plain
    ``6.1.0-47`` only through its upstream series.
    """
    m = re.search(r"[~+](?:bpo|deb)(\d+)", version) or re.search(r"[.+]deb(\d+)", abi)
    if m:
        return int(m.group(1))
    series = re.match(r"(\d+\.\d+)", abi)
    return SERIES.get(series.group(1)) if series else None


def suites(abi: str, version: str, archive_name: str) -> list[str]:
    """The suites of ``archive_name`` that may have listed the package when it was first
    seen there, most likely (and smallest index) first.

    A file is first seen where it was uploaded to: a security update in
    ``<codename>-security``, a backport in ``<codename>-backports``, a stable update in
    ``<codename>-proposed-updates``, a kernel of a release still in development in
    ``sid``.  Guessing wrong costs one more index download, never trust: each
    suite's index is verified on its own.
    """
    number = release_of(abi, version)
    code = CODENAMES.get(number) if number is not None else None
    if code is None or number is None:
        return ["sid", "experimental"]
    if archive_name == "debian-security":
        return [f"{code}-security" if number >= 11 else f"{code}/updates"]
    if archive_name == "debian-backports" or "bpo" in version or "bpo" in abi:
        return [f"{code}-backports"]
    return [f"{code}-proposed-updates", code, "sid", "experimental"]


def preference(files: list[SeenFile]) -> list[SeenFile]:
    """Security first (its indexes are small and it is where fixes appear first), then
    backports, then the main archive; earliest sighting first within one archive."""
    rank = {"debian-security": 0, "debian-backports": 1, "debian": 2}
    return sorted(files, key=lambda f: (rank.get(f.archive_name, 3), f.first_seen))


class SnapshotClient:
    """The few calls of snapshot.debian.org's machine-readable API this needs."""

    def __init__(self, base: str, session: requests.Session) -> None:
        self.base = base.rstrip("/")
        self.session = session

    def _json(self, path: str) -> dict[str, Any] | None:
        """GET an API document; None for 404 (snapshot's "no such package/version")."""
        url = f"{self.base}{path}"
        try:
            r = self.session.get(url, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise DownloadError(f"cannot ask {url}: {exc.__class__.__name__}: {exc}") from exc
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise DownloadError(f"cannot ask {url}: HTTP {r.status_code}")
        try:
            data = r.json()
        except ValueError as exc:
            raise DownloadError(f"{url}: not a JSON answer") from exc
        if not isinstance(data, dict):
            raise DownloadError(f"{url}: unexpected answer (not a JSON object)")
        return data

    def versions(self, package: str) -> list[str]:
        """Every version of binary ``package`` snapshot knows (empty if none)."""
        data = self._json(f"/mr/binary/{quote(package, safe='')}/")
        if data is None:
            return []
        try:
            return [str(r["binary_version"]) for r in data["result"]
                    if r.get("name", package) == package]
        except (KeyError, TypeError) as exc:
            raise DownloadError(f"{self.base}/mr/binary/{package}/: unexpected answer "
                                f"({exc!r})") from exc

    def binfiles(self, package: str, version: str, arch: str) -> list[SeenFile]:
        """Where the ``arch`` file of ``package`` ``version`` was first seen (empty if none)."""
        path = (f"/mr/binary/{quote(package, safe='')}/{quote(version, safe='')}"
                "/binfiles?fileinfo=1")
        data = self._json(path)
        if data is None:
            return []
        out = []
        try:
            for r in data["result"]:
                if r["architecture"] != arch:
                    continue
                sha1 = str(r["hash"])
                for info in data["fileinfo"][sha1]:
                    out.append(SeenFile(sha1=sha1, archive_name=str(info["archive_name"]),
                                        first_seen=str(info["first_seen"]),
                                        path=str(info["path"]), name=str(info["name"]),
                                        size=int(info["size"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise DownloadError(f"{self.base}{path}: unexpected answer ({exc!r})") from exc
        for f in out:
            if not (_SHA1.fullmatch(f.sha1) and _STAMP.fullmatch(f.first_seen)
                    and _ARCHIVE.fullmatch(f.archive_name)):
                raise DownloadError(f"{self.base}{path}: unexpected hash, timestamp or "
                                    f"archive name {f.sha1!r} {f.first_seen!r} "
                                    f"{f.archive_name!r}")
        return out

    def archive_url(self, seen: SeenFile) -> str:
        """The archive as snapshot saw it when the file first appeared."""
        return f"{self.base}/archive/{seen.archive_name}/{seen.first_seen}"

    def file_url(self, sha1: str) -> str:
        return f"{self.base}/file/{sha1}"
