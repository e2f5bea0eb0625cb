"""Debian kernels the configured suites no longer carry, found on snapshot.debian.org.

Two needs, one rule of trust.  Resolving ``debian:6.1.0-47`` once the suites
dropped it (:meth:`SnapshotFallback.find`) takes the newest version snapshot
has and verifies it through the signed index of the suite that listed it when
snapshot first saw the file.  Planning a list bisection whose endpoint the
suites dropped (:meth:`SnapshotFallback.entries`) only reads snapshot's API:
each kernel it adds is verified the same way when a step resolves it.  Without
a keyring snapshot is not asked at all, since its API alone is not signed.
:mod:`bisector.kernel.snapshot` is the API client this drives.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import replace

from debian.debian_support import Version

from ..errors import DownloadError, UserError
from ..paths import cache_dir
from .base import KernelEntry
from .debian_index import INDEX_TTL, ArchiveIndex
from .debian_packages import (
    ARCH,
    PKG_RE,
    SOURCE,
    Archive,
    KernelRef,
    Package,
    entry_from_snapshot,
    line_of,
    missing,
    series_of,
)
from .snapshot import SnapshotClient, preference, release_of, suites

log = logging.getLogger(__name__)


class SnapshotFallback:
    """snapshot.debian.org at ``base`` (None: never asked), read through ``index``, whose
    keyrings verify what snapshot locates and whose session every request shares."""

    def __init__(self, base: str | None, index: ArchiveIndex) -> None:
        self.base = base
        self.index = index

    def refused(self) -> str | None:
        """Why snapshot.debian.org is not asked (a sentence), or None."""
        if self.base is None:
            return "snapshot.debian.org not asked (BISECTOR_DEBIAN_SNAPSHOT=none)"
        if not self.index.keyrings:
            return ("snapshot.debian.org not asked: without a keyring its files could not "
                    "be verified (BISECTOR_DEBIAN_KEYRING)")
        return None

    def find(self, ref: str, want: KernelRef, pkgs: list[Package]) -> Package:
        """``want``, which the configured suites (``pkgs``) lack, from snapshot; the error
        says what the suites have and why snapshot could not help."""
        gone = missing(ref, want, pkgs)
        refused = self.refused()
        if refused is not None or self.base is None:
            raise UserError(f"{gone}; {refused}")
        try:
            pkg = self._newest(want, self.base)
        except DownloadError as exc:
            raise DownloadError(f"{gone}; on {self.base}: {exc}") from exc
        if pkg is None:
            raise UserError(f"{gone} nor on {self.base}")
        return pkg

    def _newest(self, want: KernelRef, base: str) -> Package | None:
        """The newest version of ``want`` snapshot.debian.org has, with the sha256 from the
        signed ``Packages`` that listed it when snapshot first saw it; None if snapshot
        never had the package."""
        key = re.sub(r"[^A-Za-z0-9]+", "_", f"{base}_{want.package}")
        cache = cache_dir() / "debian-snapshot" / f"{key}.json"
        if cache.exists() and time.time() - cache.stat().st_mtime < INDEX_TTL:
            return Package(**json.loads(cache.read_text()))
        client = SnapshotClient(base, self.index.session)
        versions = client.versions(want.package)
        if not versions:
            return None
        version = max(versions, key=Version)
        seen = client.binfiles(want.package, version, ARCH)
        if not seen:
            raise DownloadError(f"{base}: {want.package} {version} has no {ARCH} file")
        tried = []
        for where in preference(seen):
            archive = Archive(client.archive_url(where), ())
            for suite in suites(want.abi, version, where.archive_name):
                try:
                    listed = self.index.suite_packages(archive, suite, refresh=False, ttl=None)
                except DownloadError as exc:
                    log.info("snapshot %s %s: %s", where.first_seen, suite, exc)
                    tried.append(f"{where.archive_name}/{where.first_seen} {suite}: {exc}")
                    continue
                hit = next((p for p in listed
                            if p.name == want.package and p.version == version), None)
                if hit is None:
                    tried.append(f"{where.archive_name}/{where.first_seen} {suite}: "
                                 "not listed")
                    continue
                pkg = replace(hit, fetch_url=client.file_url(where.sha1), verified_by=(
                    f"sha256 from Packages of {suite} in the GPG-verified InRelease of "
                    f"{archive.url} (snapshot's SHA1 {where.sha1} only locates the file)"))
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps(pkg.__dict__))
                return pkg
        raise DownloadError(f"{want.package} {version} is on {base} but no signed index "
                            "lists it, so it cannot be verified: " + "; ".join(tried))

    def entries(self, refs: list[tuple[str, KernelRef]], live: dict[str, Package],
                pkgs: list[Package]) -> dict[str, KernelEntry]:
        """ABI → entry of the kernels snapshot has between the endpoints ``refs``, for the
        ABIs ``live`` (the configured suites) lacks (the requests are described in
        :meth:`bisector.kernel.debian.DebianSource.available_including`)."""
        refused = self.refused()
        if refused is not None or self.base is None:
            gone = [missing(ref, want, pkgs) for ref, want in refs if want.abi not in live]
            raise UserError("; ".join([*gone, f"{refused}, so a list bisection cannot "
                                                "reach it"]))
        client = SnapshotClient(self.base, self.index.session,
                                cache=cache_dir() / "debian-snapshot" / "api")
        found: dict[str, KernelEntry] = {}
        #: per endpoint: (ABI, source package, source version) of each of its versions
        ends: list[tuple[str, str, str]] = []
        for ref, want in refs:
            if want.abi in live:
                ends.append((want.abi, SOURCE, live[want.abi].version))
                continue
            seen = client.origins(want.package)
            if not seen:
                raise UserError(f"{missing(ref, want, pkgs)} nor on {self.base}")
            ends += [(want.abi, source or SOURCE, version) for _, source, version in seen]
            newest = max((binary for binary, _, _ in seen), key=Version)
            found[want.abi] = entry_from_snapshot(want.spec, newest)
        # versions whose kernels are known already: the suites' and the endpoints'
        known = {p.version for p in pkgs} | {v for _, _, v in ends}
        return self._between(client, ends, known, refs[0][1].flavour, live, found)

    @staticmethod
    def _between(client: SnapshotClient, ends: list[tuple[str, str, str]], known: set[str],
                 flavour: str, live: dict[str, Package], found: dict[str, KernelEntry]
                 ) -> dict[str, KernelEntry]:
        """The kernels of ``flavour`` built by the source versions between the endpoints
        (``ends``: ABI, source, version) on the endpoints' lines, not ``known`` already;
        added to (a copy of) ``found``, where an ABI's newest version wins."""
        out = dict(found)
        lo = min((v for _, _, v in ends), key=Version)
        hi = max((v for _, _, v in ends), key=Version)
        lines = {line_of(abi) for abi, _, _ in ends}
        # the endpoints' series and releases: 6.1.180-1~bpo11+1 (bullseye's backport) is
        # not a step from 6.1.0-47 to 6.1.0-56, and costs no request
        releases = {(abi, series_of(v), release_of(abi, v)) for abi, _, v in ends}
        for source in sorted({SOURCE} | {s for _, s, _ in ends}):
            covers = sorted({v for _, s, v in ends if s == source})
            todo = [v for v in client.source_versions(source, covers=covers)
                    if v not in known and Version(lo) <= Version(v) <= Version(hi)
                    and any(series_of(v) == series and release_of(abi, v) == release
                            for abi, series, release in releases)]
            log.info("snapshot: %d versions of %s between %s and %s", len(todo), source,
                     lo, hi)
            for v in todo:
                for name, version in client.binpackages(source, v):
                    m = PKG_RE.match(name)
                    if (m is None or m.group("flavour") != flavour
                            or line_of(m.group("abi")) not in lines or m.group("abi") in live):
                        continue
                    abi = m.group("abi")
                    if abi not in out or Version(version) > Version(out[abi].version):
                        out[abi] = entry_from_snapshot(
                            KernelRef(abi, m.group("flavour")).spec, version)
        return out
