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
from dataclasses import dataclass, replace
from pathlib import Path

from debian.deb822 import Packages
from debian.debian_support import Version

from .. import proc
from ..errors import DownloadError, UserError
from ..paths import cache_dir
from .base import KernelArtifact, KernelEntry
from .debs import artifact_from_debs
from .fetch import download, get_bytes, new_session
from .snapshot import DEFAULT_SNAPSHOT, SnapshotClient, preference, release_of, suites

log = logging.getLogger(__name__)

DEFAULT_ARCHIVES = ("http://deb.debian.org/debian=bookworm,bookworm-updates "
                    "http://deb.debian.org/debian-security=bookworm-security")
#: the current keys, and the retired ones that signed older releases (snapshot's indexes)
KEYRINGS = (Path("/usr/share/keyrings/debian-archive-keyring.gpg"),
            Path("/usr/share/keyrings/debian-archive-removed-keys.gpg"))
INDEX_TTL = 6 * 3600
ARCH = "amd64"
#: ``6.1.0-56``, ``6.1.0-0.deb11.13`` (bullseye's backports/security ABI), ``5.10.0-0.bpo.15``,
#: ``6.12.41+deb13``, ``6.12.90+deb13.1``, ``6.12.22+bpo`` (bookworm-backports)
ABI = (r"\d+\.\d+(?:\.\d+)?"
       r"(?:-\d+(?:\.(?:deb\d+|bpo)\.\d+)?|\+(?:deb\d+|bpo)(?:\.\d+)?)")
PKG_RE = re.compile(rf"^linux-image-(?P<abi>{ABI})-(?P<flavour>(?:[a-z]+-)?amd64)-unsigned$")
REF_RE = re.compile(rf"(?P<abi>{ABI})(?:-(?P<flavour>[a-z]+))?")
#: an ABI's line of uploads: its upstream series and the release marker of its name
#: (``6.1.0-47`` → 6.1, none: bookworm's own; ``6.1.0-0.deb11.13`` → 6.1, deb11;
#: ``6.12.41+deb13`` and ``6.12.90+deb13.1`` → 6.12, deb13; ``6.12.22+bpo`` → 6.12, bpo)
LINE_RE = re.compile(r"(?P<series>\d+\.\d+)(?:\.\d+)?(?:-(?:0\.)?|\+)(?P<tag>deb\d+|bpo)?")
#: the source package Debian's kernels are built from (bullseye's 6.1 security
#: kernels come from ``linux-6.1``: an endpoint's own source is asked too)
SOURCE = "linux"


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
    #: where the bytes come from when not ``url`` (snapshot's ``/file/<sha1>``)
    fetch_url: str = ""
    #: what the sha256 above was taken from, for the artifact's provenance
    verified_by: str = ""

    @property
    def url(self) -> str:
        return f"{self.archive.rstrip('/')}/{self.filename}"

    @property
    def upstream(self) -> str:
        """``6.1.192-2`` → ``v6.1.192`` (the upstream tag the package is based on)."""
        return upstream_of(self.version)


def upstream_of(version: str) -> str:
    """``6.1.192-2`` → ``v6.1.192``, ``6.12.22-1~bpo12+1`` → ``v6.12.22``."""
    return "v" + version.split("-")[0].split("~")[0]


def line_of(abi: str) -> tuple[str, str]:
    """The line of uploads an ABI belongs to (see :data:`LINE_RE`): kernels of one line
    follow each other; another line (a backport, another release's build of the same
    series) is a different build of the same upstream, not a step between them."""
    m = LINE_RE.match(abi)
    return (m.group("series"), m.group("tag") or "") if m else (abi, "")


def series_of(version: str) -> str:
    """``6.1.170-1`` → ``6.1``; ``6.12~rc3-1~exp1`` → ``6.12``."""
    m = re.match(r"\d+\.\d+", version)
    return m.group(0) if m else version


@dataclass(frozen=True)
class KernelRef:
    """What ``debian:<ref>`` asks for: ``6.12.22+bpo-rt`` → ABI, flavour, package name."""

    abi: str
    flavour: str

    @property
    def package(self) -> str:
        return f"linux-image-{self.abi}-{self.flavour}-unsigned"

    @property
    def spec(self) -> str:
        """``debian:6.1.0-47``, ``debian:6.1.0-47-cloud``: how it is written."""
        short = self.flavour.removesuffix(f"-{ARCH}")
        return f"debian:{self.abi}" + ("" if self.flavour == ARCH else f"-{short}")


def parse_ref(ref: str) -> KernelRef:
    m = REF_RE.fullmatch(ref)
    if not m:
        raise UserError(f"debian:{ref}: expected an ABI like 6.1.0-56, 6.12.115+deb12, "
                        "6.12.22+bpo or 6.1.0-0.deb11.13 (optionally -cloud / -rt)")
    flavour = f"{m.group('flavour')}-amd64" if m.group("flavour") else "amd64"
    return KernelRef(m.group("abi"), flavour)


def parse_archives(text: str) -> list[Archive]:
    out = []
    for item in text.split():
        url, sep, suites = item.partition("=")
        if not sep or not suites:
            raise UserError(f"BISECTOR_DEBIAN_ARCHIVES: {item!r}: expected URL=suite[,suite]")
        out.append(Archive(url, tuple(s for s in suites.split(",") if s)))
    return out


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


def _keyrings(given: Path | Sequence[Path] | None) -> tuple[Path, ...]:
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


class DebianSource:
    prefix = "debian"

    def __init__(self, archives: list[Archive] | None = None,
                 keyring: Path | Sequence[Path] | None = KEYRINGS,
                 snapshot: str | None = None) -> None:
        self.archives = archives or parse_archives(
            os.environ.get("BISECTOR_DEBIAN_ARCHIVES", DEFAULT_ARCHIVES))
        self.keyrings = _keyrings(keyring)
        base = snapshot or os.environ.get("BISECTOR_DEBIAN_SNAPSHOT") or DEFAULT_SNAPSHOT
        self.snapshot = None if base == "none" else base
        self.session = new_session()  # retries with backoff (429, 5xx)

    # ---------------------------------------------------------------- index
    def _verified_release(self, archive: Archive, suite: str) -> str:
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

    def _suite_packages(self, archive: Archive, suite: str, refresh: bool,
                        ttl: float | None = INDEX_TTL) -> list[Package]:
        """The kernel packages of one suite (``ttl`` None: the index never changes, as a
        snapshot's does not)."""
        key = re.sub(r"[^A-Za-z0-9]+", "_", f"{archive.url}_{suite}")
        cache = cache_dir() / "debian-index" / f"{key}.json"
        if not refresh and cache.exists() and (
                ttl is None or time.time() - cache.stat().st_mtime < ttl):
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

    # ---------------------------------------------------------------- snapshot
    def _from_snapshot(self, want: KernelRef, base: str) -> Package | None:
        """The newest version of ``want`` snapshot.debian.org has, with the sha256 from the
        signed ``Packages`` that listed it when snapshot first saw it; None if snapshot
        never had the package."""
        key = re.sub(r"[^A-Za-z0-9]+", "_", f"{base}_{want.package}")
        cache = cache_dir() / "debian-snapshot" / f"{key}.json"
        if cache.exists() and time.time() - cache.stat().st_mtime < INDEX_TTL:
            return Package(**json.loads(cache.read_text()))
        client = SnapshotClient(base, self.session)
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
                    listed = self._suite_packages(archive, suite, refresh=False, ttl=None)
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

    # ---------------------------------------------------------------- API
    def _missing(self, ref: str, want: KernelRef, pkgs: list[Package]) -> str:
        known = sorted({p.abi for p in pkgs if p.flavour == ARCH}, key=Version)
        return (f"debian:{ref}: no {want.package} in the configured archives "
                f"(available: {', '.join(known)})")

    def _snapshot_refused(self) -> str | None:
        """Why snapshot.debian.org is not asked (a sentence), or None."""
        if self.snapshot is None:
            return "snapshot.debian.org not asked (BISECTOR_DEBIAN_SNAPSHOT=none)"
        if not self.keyrings:
            return ("snapshot.debian.org not asked: without a keyring its files could not "
                    "be verified (BISECTOR_DEBIAN_KEYRING)")
        return None

    def find(self, ref: str) -> Package:
        """The newest package of ``ref`` in the configured suites, else on snapshot."""
        want = parse_ref(ref)
        pkgs = self.packages()
        hits = [p for p in pkgs if p.abi == want.abi and p.flavour == want.flavour]
        if hits:
            return max(hits, key=lambda p: Version(p.version))
        missing = self._missing(ref, want, pkgs)
        refused = self._snapshot_refused()
        if refused is not None or self.snapshot is None:
            raise UserError(f"{missing}; {refused}")
        try:
            pkg = self._from_snapshot(want, self.snapshot)
        except DownloadError as exc:
            raise DownloadError(f"{missing}; on {self.snapshot}: {exc}") from exc
        if pkg is None:
            raise UserError(f"{missing} nor on {self.snapshot}")
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
        return [_entry(best[abi]) for abi in sorted(best, key=Version)]

    def available_including(self, specs: Sequence[str]) -> list[KernelEntry]:
        """The configured suites' kernels, completed from snapshot.debian.org from the
        oldest of ``specs`` to the newest (a list bisection's endpoints), oldest first.

        A bisection from ``debian:6.1.0-47`` (dropped by the suites) to ``6.1.0-56``
        must walk every kernel in between, most of them gone from the archive too.
        The list is of the endpoints' flavour.  Snapshot adds the kernels of the
        endpoints' lines (:func:`line_of`) whose version lies between theirs; the
        configured suites win for an ABI they carry.  Requests (all cached, see
        :class:`SnapshotClient`, so planning again asks nothing): one
        ``/mr/binary/<package>/`` per endpoint the suites lack (its versions bound the
        range), ``/mr/package/<source>/`` once, and ``…/<version>/binpackages`` for each
        version of the endpoints' series and releases inside the range whose kernels
        are not known already.  Nothing is downloaded or verified here; each kernel is,
        through the signed indexes, when a step resolves it.
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
        entries = {abi: _entry(p) for abi, p in live.items()}
        if any(want.abi not in live for _, want in refs):
            entries.update(self._snapshot_entries(refs, live, pkgs))
        return [entries[abi] for abi in sorted(
            entries, key=lambda abi: (Version(entries[abi].version), Version(abi)))]

    def _snapshot_entries(self, refs: list[tuple[str, KernelRef]], live: dict[str, Package],
                          pkgs: list[Package]) -> dict[str, KernelEntry]:
        """ABI → entry of the kernels snapshot has between the endpoints ``refs``, for the
        ABIs ``live`` (the configured suites) lacks."""
        refused = self._snapshot_refused()
        if refused is not None or self.snapshot is None:
            gone = [self._missing(ref, want, pkgs) for ref, want in refs
                    if want.abi not in live]
            raise UserError("; ".join([*gone, f"{refused}, so a list bisection cannot "
                                                "reach it"]))
        client = SnapshotClient(self.snapshot, self.session,
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
                raise UserError(f"{self._missing(ref, want, pkgs)} nor on {self.snapshot}")
            ends += [(want.abi, source or SOURCE, version) for _, source, version in seen]
            newest = max((binary for binary, _, _ in seen), key=Version)
            found[want.abi] = _entry_from_snapshot(want.spec, newest)
        lo = min((v for _, _, v in ends), key=Version)
        hi = max((v for _, _, v in ends), key=Version)
        lines = {line_of(abi) for abi, _, _ in ends}
        # the endpoints' series and releases: 6.1.180-1~bpo11+1 (bullseye's backport) is
        # not a step from 6.1.0-47 to 6.1.0-56, and costs no request
        releases = {(abi, series_of(v), release_of(abi, v)) for abi, _, v in ends}
        # versions whose kernels are known already: the suites' and the endpoints'
        known = {p.version for p in pkgs} | {v for _, _, v in ends}
        flavour = refs[0][1].flavour
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
                    if abi not in found or Version(version) > Version(found[abi].version):
                        found[abi] = _entry_from_snapshot(
                            KernelRef(abi, m.group("flavour")).spec, version)
        return found


def _entry(p: Package) -> KernelEntry:
    """A configured suite's kernel as ``kernels list`` and a list bisection show it."""
    return KernelEntry(KernelRef(p.abi, p.flavour).spec, p.version,
                       f"{p.suite}, upstream {p.upstream}", upstream=p.upstream)


def _entry_from_snapshot(spec: str, version: str) -> KernelEntry:
    up = upstream_of(version)
    return KernelEntry(spec, version, f"snapshot, upstream {up}", upstream=up)
