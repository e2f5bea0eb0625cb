"""``debian:<abi>``: Debian's prebuilt kernels from its archive, and from snapshot.debian.org.

Resolution follows the archive's chain of trust: ``InRelease`` (GPG-verified
with gpgv and the Debian archive keyrings when they are present) gives the
sha256 of ``Packages.xz``; ``Packages`` gives the sha256 of the .deb; the .deb
is verified before it is unpacked.  Only the text the signature covers is
parsed (``gpgv --output -``): lines an attacker adds around the signed block
of an ``InRelease`` carry no weight.  Several suites are searched (bookworm,
bookworm-updates, bookworm-security by default) and the newest package
version of the requested ABI wins.

An ABI the configured suites no longer carry (``debian:6.1.0-47``) is looked
up on snapshot.debian.org (:mod:`bisector.kernel.snapshot`) and verified the
same way, through the signed ``InRelease`` of the suite that listed it when
snapshot first saw the file.  Without a keyring snapshot is not asked: its
API alone is not signed.

A list bisection whose endpoint the suites dropped walks a list that snapshot
completes (:meth:`DebianSource.available_including`): the versions of the
``linux`` source package between the endpoints, and the kernel packages each
built.  Planning only reads snapshot's API; each kernel is verified as above
when a step resolves it.

Archives are configurable (``BISECTOR_DEBIAN_ARCHIVES``: space-separated
``URL=suite,suite`` items), so a snapshot.debian.org timestamp or a local
mirror works the same way; so are the snapshot service
(``BISECTOR_DEBIAN_SNAPSHOT``, ``none`` to never ask it) and the keyrings
(``BISECTOR_DEBIAN_KEYRING``: paths separated by ``:``, or ``none``).

Along the data flow: :mod:`~bisector.kernel.debian_packages` names the
packages, :mod:`~bisector.kernel.debian_index` reads and verifies the indexes,
:mod:`~bisector.kernel.debian_snapshot` reaches into snapshot.debian.org when
the suites fall short; this module picks the package and makes the artifact.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from debian.debian_support import Version

from ..errors import UserError
from ..paths import cache_dir
from .base import KernelArtifact, KernelEntry
from .debian_index import (
    INDEX_TTL,
    KEYRINGS,
    ArchiveIndex,
    keyrings_for,
    release_sha256,
    signature_problem,
    strip_clearsign,
    verified_content,
)
from .debian_packages import (
    ABI,
    ARCH,
    LINE_RE,
    PKG_RE,
    REF_RE,
    SOURCE,
    Archive,
    KernelRef,
    Package,
    entry,
    line_of,
    parse_archives,
    parse_ref,
    series_of,
    upstream_of,
)
from .debian_snapshot import SnapshotFallback
from .debs import artifact_from_debs
from .fetch import download, new_session
from .snapshot import DEFAULT_SNAPSHOT

__all__ = [
    "ABI", "ARCH", "DEFAULT_ARCHIVES", "INDEX_TTL", "KEYRINGS", "LINE_RE", "PKG_RE", "REF_RE",
    "SOURCE", "Archive", "DebianSource", "KernelRef", "Package", "line_of", "parse_archives",
    "parse_ref", "release_sha256", "series_of", "signature_problem", "strip_clearsign",
    "upstream_of", "verified_content",
]

log = logging.getLogger(__name__)

DEFAULT_ARCHIVES = ("http://deb.debian.org/debian=bookworm,bookworm-updates "
                    "http://deb.debian.org/debian-security=bookworm-security")


class DebianSource:
    """``debian:<abi>``: the newest package of an ABI, from the configured suites
    (:attr:`index`, an :class:`ArchiveIndex`) or else from snapshot.debian.org
    (:attr:`fallback`, a :class:`SnapshotFallback`), verified and unpacked."""

    prefix = "debian"

    def __init__(self, archives: list[Archive] | None = None,
                 keyring: Path | Sequence[Path] | None = KEYRINGS,
                 snapshot: str | None = None) -> None:
        self.archives = archives or parse_archives(
            os.environ.get("BISECTOR_DEBIAN_ARCHIVES", DEFAULT_ARCHIVES))
        self.keyrings = keyrings_for(keyring)
        base = snapshot or os.environ.get("BISECTOR_DEBIAN_SNAPSHOT") or DEFAULT_SNAPSHOT
        self.snapshot = None if base == "none" else base
        self.session = new_session()  # retries with backoff (429, 5xx)
        self.index = ArchiveIndex(self.keyrings, self.session)
        self.fallback = SnapshotFallback(self.snapshot, self.index)

    def packages(self, refresh: bool = False) -> list[Package]:
        """The kernel packages of the configured suites."""
        return self.index.packages(self.archives, refresh)

    def find(self, ref: str) -> Package:
        """The newest package of ``ref`` in the configured suites, else on snapshot."""
        want = parse_ref(ref)
        pkgs = self.packages()
        hits = [p for p in pkgs if p.abi == want.abi and p.flavour == want.flavour]
        if hits:
            return max(hits, key=lambda p: Version(p.version))
        pkg = self.fallback.find(ref, want, pkgs)
        log.info("debian:%s: from %s, %s", ref, pkg.fetch_url, pkg.verified_by)
        return pkg

    def resolve(self, ref: str) -> KernelArtifact:
        pkg = self.find(ref)
        url = pkg.fetch_url or pkg.url
        deb = download(url, cache_dir() / "downloads" / Path(pkg.filename).name,
                       pkg.sha256, size=pkg.size, session=self.session)
        verified_by = pkg.verified_by or (
            f"sha256 from Packages of {pkg.suite} in the GPG-verified InRelease"
            if self.keyrings else f"sha256 from Packages of {pkg.suite} (Release not "
                                  "GPG-verified: no keyring)")
        meta = {"package": pkg.name, "version": pkg.version, "sha256": pkg.sha256,
                "url": url, "suite": pkg.suite, "distro": "debian",
                "verified_by": verified_by}
        if pkg.fetch_url:
            meta["snapshot"] = pkg.archive  # <service>/archive/<archive_name>/<first_seen>
        return artifact_from_debs(f"debian:{ref}", [deb], meta, kind="debian",
                                  upstream=pkg.upstream)

    @staticmethod
    def _newest(pkgs: list[Package], flavour: str) -> dict[str, Package]:
        """ABI → its newest package of ``flavour`` in the configured suites."""
        best: dict[str, Package] = {}
        for p in pkgs:
            if p.flavour != flavour:
                continue
            if p.abi not in best or Version(p.version) > Version(best[p.abi].version):
                best[p.abi] = p
        return best

    def available(self) -> list[KernelEntry]:
        return self.kernels(ARCH)

    def kernels(self, flavour: str = ARCH) -> list[KernelEntry]:
        """The configured suites' kernels of one flavour (``amd64``, ``cloud-amd64``),
        oldest first: what a sweep's "newest N of a series" picks from."""
        flavour = flavour if flavour.endswith(ARCH) else f"{flavour}-{ARCH}"
        best = self._newest(self.packages(), flavour)
        return [entry(best[abi]) for abi in sorted(best, key=Version)]

    def available_including(self, specs: Sequence[str]) -> list[KernelEntry]:
        """The configured suites' kernels, completed from snapshot.debian.org from the
        oldest of ``specs`` to the newest (a list bisection's endpoints), oldest first.

        A bisection from ``debian:6.1.0-47`` (dropped by the suites) to ``6.1.0-56``
        must walk every kernel in between, most of them gone from the archive too.
        The list is of the endpoints' flavour.  Snapshot adds the kernels of the
        endpoints' lines (:func:`line_of`) whose version lies between theirs; the
        configured suites win for an ABI they carry.  Requests (all cached, see
        :class:`~bisector.kernel.snapshot.SnapshotClient`, so planning again asks
        nothing): one ``/mr/binary/<package>/`` per endpoint the suites lack (its
        versions bound the range), ``/mr/package/<source>/`` once, and
        ``…/<version>/binpackages`` for each version of the endpoints' series and
        releases inside the range whose kernels are not known already.  Nothing is
        downloaded or verified here; each kernel is, through the signed indexes, when
        a step resolves it.
        """
        refs = []
        for spec in specs:
            prefix, _, ref = spec.partition(":")
            if prefix != self.prefix:
                raise UserError(f"{spec}: not a {self.prefix}: kernel")
            refs.append((ref, parse_ref(ref)))
        flavours = {want.flavour for _, want in refs}
        if len(flavours) != 1:
            raise UserError(f"{' and '.join(specs)}: a list bisection walks kernels of "
                            "one flavour")
        (flavour,) = flavours
        pkgs = self.packages()
        live = self._newest(pkgs, flavour)
        entries = {abi: entry(p) for abi, p in live.items()}
        if any(want.abi not in live for _, want in refs):
            entries.update(self.fallback.entries(refs, live, pkgs))
        return [entries[abi] for abi in sorted(
            entries, key=lambda abi: (Version(entries[abi].version), Version(abi)))]
