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
* ``/file/<sha1>`` serves the bytes;
* ``/mr/package/<source>/`` lists the versions a source package had, and
  ``/mr/package/<source>/<version>/binpackages`` the binary packages one
  version built: a list bisection whose endpoint only snapshot has finds the
  kernels between its endpoints there (:meth:`bisector.kernel.debian.
  DebianSource.available_including`).

The API itself is not signed, so its SHA1 only *locates* a file.  What a
download is checked against comes from the archive as it was at
``first_seen`` (``/archive/<archive_name>/<first_seen>/dists/<suite>/``): its
``InRelease``, GPG-verified with the Debian keyrings (retired releases are
signed by keys in ``debian-archive-removed-keys.gpg``), gives the sha256 of
``Packages.xz``, which gives the sha256 of the .deb.  That part is the same
chain of trust as the live archive's and lives in
:mod:`bisector.kernel.debian_index` (driven by :mod:`bisector.kernel.debian_snapshot`);
this module is the API client and the guess of which suites to look in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from ..errors import BisectorError, DownloadError
from ..paths import slug, write_atomic
from .fetch import TIMEOUT

log = logging.getLogger(__name__)

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
    """The few calls of snapshot.debian.org's machine-readable API this needs.

    With ``cache`` (a directory), the answers a list bisection's plan needs are kept
    there and reused while they still hold (see each call), so planning the same
    campaign again (a resume, a second run) asks snapshot nothing.  Without one
    (resolving a kernel, which wants the newest version) every call asks.
    """

    def __init__(self, base: str, session: requests.Session,
                 cache: Path | None = None) -> None:
        self.base = base.rstrip("/")
        self.session = session
        self.cache = cache

    def _json(self, path: str,
              reuse: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
        """GET an API document; None for 404 (snapshot's "no such package/version").

        ``reuse`` says whether a cached answer still holds (only with a cache); a 404
        is never cached: the package may appear later.
        """
        stored = self._cache_file(path) if reuse is not None else None
        if stored is not None and reuse is not None:
            try:
                cached = json.loads(stored.read_text())
                if isinstance(cached, dict) and reuse(cached):
                    return cached
            except (OSError, ValueError, TypeError, KeyError):
                pass  # absent or damaged: ask again
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
        if stored is not None:
            try:
                stored.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(stored, json.dumps(data))
            except (OSError, BisectorError) as exc:  # a cache not written only costs time
                log.info("not caching %s: %s", stored, exc)
        return data

    def _cache_file(self, path: str) -> Path | None:
        """Where the answer to ``path`` is kept: readable name, hash for uniqueness
        (``6.12.22-1~bpo12+1`` and ``6.12.22-1+bpo12+1`` must not share a file)."""
        if self.cache is None:
            return None
        digest = hashlib.sha256(f"{self.base}{path}".encode()).hexdigest()[:16]
        return self.cache / f"{slug(path)[:60]}-{digest}.json"

    def origins(self, package: str) -> list[tuple[str, str, str]]:
        """``(binary version, source package, source version)`` of every version of binary
        ``package`` snapshot knows (empty if none).  Cached, and reused while it names
        a version: the ABI is in a package's name, so an ABI that is gone from the
        archive gains no new versions."""
        data = self._json(f"/mr/binary/{quote(package, safe='')}/",
                          reuse=lambda doc: bool(doc["result"]))
        if data is None:
            return []
        try:
            return [(str(r["binary_version"]), str(r.get("source", "")),
                     str(r.get("version", r["binary_version"]))) for r in data["result"]
                    if r.get("name", package) == package]
        except (KeyError, TypeError) as exc:
            raise DownloadError(f"{self.base}/mr/binary/{package}/: unexpected answer "
                                f"({exc!r})") from exc

    def versions(self, package: str) -> list[str]:
        """Every version of binary ``package`` snapshot knows (empty if none)."""
        return [binary for binary, _, _ in self.origins(package)]

    def source_versions(self, source: str, covers: Sequence[str] = ()) -> list[str]:
        """Every version of source package ``source`` (empty if none).

        The list grows with each upload, so a cached one is reused only while it names
        every version in ``covers`` (a bisection's endpoints): uploads to one line of a
        series get ever higher versions, so once the newest endpoint is in the list,
        no version between the endpoints can still be missing from it.
        """
        want = set(covers)

        def holds(doc: dict[str, Any]) -> bool:
            return want <= {str(r["version"]) for r in doc["result"]}

        path = f"/mr/package/{quote(source, safe='')}/"
        data = self._json(path, reuse=holds)
        if data is None:
            return []
        try:
            return [str(r["version"]) for r in data["result"]]
        except (KeyError, TypeError) as exc:
            raise DownloadError(f"{self.base}{path}: unexpected answer ({exc!r})") from exc

    def binpackages(self, source: str, version: str) -> list[tuple[str, str]]:
        """``(name, version)`` of the binary packages ``source`` ``version`` built (empty if
        snapshot does not know it).  A version's binaries never change: cached for good."""
        path = f"/mr/package/{quote(source, safe='')}/{quote(version, safe='')}/binpackages"
        data = self._json(path, reuse=lambda doc: True)
        if data is None:
            return []
        try:
            return [(str(r["name"]), str(r["version"])) for r in data["result"]]
        except (KeyError, TypeError) as exc:
            raise DownloadError(f"{self.base}{path}: unexpected answer ({exc!r})") from exc

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
