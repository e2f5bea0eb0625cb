"""``ubuntu-mainline:<version>``: Ubuntu's mainline kernel builds.

The archive (``https://kernel.ubuntu.com/mainline/`` by default, overridable
with ``BISECTOR_UBUNTU_MAINLINE_URL``) is an Apache directory listing:

* the top page has one folder per version: ``v5.7.1/``, ``v5.7-rc3/``,
  ``v6.1/`` (no ``.0``).  Apache sorts by name, so stable releases interleave
  (``v5.10.10/`` before ``v5.10.2/``); we sort by version.  The page also
  holds folders bisector skips on purpose: suffixed builds
  (``v4.2-rc1-unstable/``, ``v5.12-rc1-dontuse/``, ``v4.4.10-xenial/``,
  ``v4.2.8-ckt7-wily/``, ``v4.4-rc2+cod1/``), four-part 2.6 versions
  (``v2.6.27.61/``) and branch builds (``daily/``, ``drm-tip/``).  None of
  them is a point on the line a bisection walks, and taking them in would
  break the oldest-first order the bisection relies on.
* a version folder's page starts with header text that says, per arch,
  whether the build succeeded, and links its .debs.  Since v5.6.18 /
  v5.7-rc7 it reads ``Test amd64/build succeeded (rc=0, …)`` followed by
  ``amd64/linux-….deb`` links, then ``Test amd64/self-tests failed (…)``;
  the files live in per-arch folders (``amd64/``) with ``CHECKSUMS``,
  ``CHECKSUMS.gpg``, ``status`` and ``log``.  Older folders say ``Build for
  amd64 succeeded (see BUILD.LOG.amd64):`` and keep the files at the top.
* a folder may hold two builds of the same version (different timestamps in
  the package version): the newest complete one wins.

Whether a build is usable is decided from that text and the .debs present
(:meth:`Listing.state`), not from ``amd64/status`` alone: when only the
self-tests failed the status is non-zero but the packages are the build's,
and a failed build still leaves its ``linux-headers`` packages behind.  An
unusable build is :class:`KernelUnavailable`, which a bisection treats as SKIP.

Flavour (``generic``, ``lowlatency``, ``generic-64k``, …) and arch
(``amd64``, ``arm64``, ``ppc64el``, …) come from ``BISECTOR_UBUNTU_FLAVOUR``
and ``BISECTOR_UBUNTU_ARCH`` (or ``kernels list --flavour/--arch``); the
defaults are ``generic`` and ``amd64``, the only arch the guest can boot.

Refs: a version (``v5.7.1``, ``5.7.1``, ``v5.7-rc3``), or a selector that
names the newest usable release — ``latest``, or ``v6.1.y`` for a series
(rcs never; the artifact is named by the version chosen).  A bisection needs
versions: its endpoints must be in the list.  ``kernels list ubuntu-mainline
VERSION`` takes the same selectors, plus ``v6.1`` as short for ``v6.1.y`` —
in a listing it is a question; as a kernel spec ``v6.1`` is the v6.1 release.

Files are verified against ``CHECKSUMS`` (sha256), whose detached signature
``CHECKSUMS.gpg`` is checked by default: with gpgv, a keyring (the
``BISECTOR_UBUNTU_KEYRING`` file, else one shipped as
``bisector/data/ubuntu-kernel-ppa.gpg``) and a pinned fingerprint (the Kernel
PPA key, :data:`KERNEL_PPA_FINGERPRINT`, or ``BISECTOR_UBUNTU_KEY_FINGERPRINT``).
A signature by any other key is refused even when the keyring holds that key.
Without a keyring the files are used with a warning, which the artifact
carries as ``meta["checksums_signature"] = "not checked: …"``.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

from .. import proc
from ..errors import BisectorError, ChecksumMismatch, DownloadError, InfraError, UserError
from ..paths import cache_dir, slug, write_atomic
from ..progress import Progress
from ..resources import data_dir
from .base import KernelArtifact, KernelEntry, KernelUnavailable
from .debs import artifact_from_debs
from .fetch import download, get_bytes, new_session

log = logging.getLogger(__name__)

DEFAULT_URL = "https://kernel.ubuntu.com/mainline/"
ARCH = "amd64"
FLAVOUR = "generic"
#: the "Kernel PPA <kernel-ppa@canonical.com>" signing key (key id 17C622B0), which
#: signs every CHECKSUMS of the mainline archive
KERNEL_PPA_FINGERPRINT = "60AA7B6F30434AE68E569963E50C6A0917C622B0"
#: a keyring holding that key, shipped in ``bisector/data/`` when someone adds it
#: (it is not shipped yet: the key could not be fetched where bisector is built,
#: and key material must come from the key's owner, not be made up)
PACKAGED_KEYRING = "ubuntu-kernel-ppa.gpg"
#: folder listings (build status) are reused for this long when the index shows no
#: dates; like debian.py's INDEX_TTL
INDEX_TTL = 6 * 3600
#: … and for this long while the index's date of the folder has not changed
DATED_TTL = 7 * 24 * 3600
#: parallel requests when a listing reads many folders (a cold ``kernels list``)
LIST_WORKERS = 8

#: ``v5.7``, ``v5.7-rc3``, ``v5.7.1``; not ``v5.7.1-rc1`` (no such line to walk), not
#: suffixed or four-part names (see the module docstring)
_VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)(?:\.(\d+)|-rc(\d+))?/?$")
#: a series selector, ``v6.1.y`` / ``6.1.y`` (listings also take ``v6.1``)
_SERIES = re.compile(r"^v?(\d+)\.(\d+)\.[yx]$")
#: linux-image-unsigned-5.7.1-050701-generic_5.7.1-050701.202006071230_amd64.deb,
#: linux-image-4.15.0-041500-generic_4.15.0-041500.201801282230_amd64.deb (old builds),
#: linux-image-unsigned-6.4.3-060403-generic-64k_…_arm64.deb,
#: linux-headers-6.1.1-060101_6.1.1-060101.202212211831_all.deb (no flavour)
_DEB = re.compile(
    r"^linux-(?P<kind>image-unsigned|image|modules|headers)-(?P<rel>\d+\.\d+\.\d+-\d+(?:rc\d+)?)"
    r"(?:-(?P<flav>[a-z][a-z0-9]*(?:-[a-z0-9]+)*))?_(?P<ver>[^_]+)_(?P<arch>[a-z0-9]+)\.deb$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
#: a row of the top index: the folder and its "last modified" column (Apache)
_INDEX_ROW = re.compile(r'href="(v[^"/]+)/"[^\n]*?(\d{4}-\d{2}-\d{2} \d{2}:\d{2})')


def version_key(name: str) -> tuple[int, int, int, int]:
    """Sort key: v5.7-rc3 < v5.7 < v5.7.1."""
    m = _VERSION_DIR.match(name.rstrip("/"))
    if not m:
        return (0, 0, 0, 0)
    major, minor, patch, rc = m.groups()
    return (int(major), int(minor), int(patch or 0) * 1000 + (0 if rc else 999),
            int(rc or 0))


def is_rc(version: str) -> bool:
    return "-rc" in version


def _series(version: str) -> tuple[int, int]:
    k = version_key(version)
    return k[0], k[1]


def links(page: str) -> list[str]:
    """hrefs of a directory listing, without sort/parent links."""
    out = []
    for href in re.findall(r'href="([^"]+)"', page, flags=re.IGNORECASE):
        href = html.unescape(href)
        if href.startswith(("?", "/", "../", "http:", "https:")):
            continue
        out.append(href)
    return out


def page_text(page: str) -> str:
    """The words of an HTML page (tags dropped), where the build results are stated."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def parse_checksums(text: str) -> dict[str, str]:
    """``filename → sha256`` from a CHECKSUMS file (sha1 lines are ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            out[Path(parts[1].lstrip("*")).name] = parts[0]
    return out


def _outcome(text: str, pattern: str) -> str | None:
    """``succeeded`` if the text says so anywhere (a rebuild may follow a failure),
    else ``failed`` if it says that, else None (the page does not say)."""
    found = set(re.findall(pattern + r" (succeeded|failed)", text))
    return "succeeded" if "succeeded" in found else ("failed" if found else None)


class SignatureRefused(ChecksumMismatch):
    """``CHECKSUMS`` is not signed by the pinned key: its sha256 sums cannot be trusted,
    so nothing it lists is downloaded (let alone booted)."""


@dataclass
class Build:
    stamp: str  # package version, e.g. 5.7.1-050701.202006071230
    image: str | None = None
    modules: str | None = None
    extra: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuildState:
    """Whether a version can be had, and the words for ``kernels list``."""

    usable: bool
    reason: str
    build: Build | None = None


@dataclass
class Listing:
    """What a version folder says about one arch: its .debs and the build results.

    Only facts are kept (they are cached as JSON); :meth:`state` interprets them
    for a flavour, so the cache holds for every flavour.
    """

    version: str
    base_url: str  # folder holding the debs and CHECKSUMS
    debs: list[str]  # .deb file names in base_url for this arch (and ``_all``)
    arch: str = ARCH
    #: content of <arch>/status, read only when the page does not say how the build went
    #: (on the real archive it is non-zero when only the self-tests failed)
    status: str | None = None
    #: "succeeded" / "failed" / None, from "Test amd64/build …" or "Build for amd64 …"
    build: str | None = None
    #: "succeeded" / "failed" / None, from "Test amd64/self-tests …"
    self_tests: str | None = None

    def builds(self, flavour: str) -> dict[str, Build]:
        out: dict[str, Build] = {}
        for name in self.debs:
            m = _DEB.match(name)
            if not m or m.group("arch") != self.arch or m.group("flav") != flavour:
                continue
            if m.group("kind") == "headers":
                continue
            b = out.setdefault(m.group("ver"), Build(stamp=m.group("ver")))
            if m.group("kind").startswith("image"):
                # prefer the unsigned image when both exist
                if b.image is None or m.group("kind") == "image-unsigned":
                    b.image = name
            else:
                b.modules = name
        return out

    def flavours(self) -> list[str]:
        """Flavours with a kernel image here (for a message naming what there is)."""
        found = set()
        for name in self.debs:
            m = _DEB.match(name)
            if m and m.group("arch") == self.arch and m.group("kind").startswith("image"):
                found.add(m.group("flav") or "?")
        return sorted(found)

    def best(self, flavour: str = FLAVOUR) -> Build | None:
        """The newest build that has an image, preferring builds with a modules package.

        Whether the modules are really needed is decided from the unpacked
        content (a modular kernel without its modules is refused there).
        """
        complete = [b for b in self.builds(flavour).values() if b.image is not None]
        if not complete:
            return None
        return max(complete, key=lambda b: (b.modules is not None, b.stamp))

    def state(self, flavour: str) -> BuildState:
        """Usable or not, in this order:

        1. the page says the arch's build failed (and never that it succeeded):
           failed, whatever .debs are left (headers, or a partial set);
        2. a non-zero ``status`` (read only when the page says nothing): failed,
           the only word there is;
        3. no ``linux-image`` of the flavour: no complete build (other flavours or
           only headers may be there);
        4. otherwise usable.  Failed self-tests (which make ``status`` non-zero) are
           a note: they are Ubuntu's extra checks; the packages are the build's.
        """
        where = f"the {self.arch} build"
        if self.build == "failed":
            return BuildState(False, f"{where} failed")
        if self.status not in (None, "0"):
            return BuildState(False, f"{where} failed (status {self.status})")
        best = self.best(flavour)
        if best is None:
            there = ", ".join(self.flavours()) or "none"
            return BuildState(False, f"no complete {self.arch} {flavour} build (failed "
                                     f"build?) at {self.base_url} (flavours there: {there})")
        notes = [f"{flavour} {self.arch}"]
        if self.self_tests == "failed":
            notes.append("self-tests failed")
        return BuildState(True, ", ".join(notes), best)


def _deb_arch(name: str) -> str | None:
    m = _DEB.match(name)
    return m.group("arch") if m else None


def _name(what: str, value: str, examples: str) -> str:
    """A flavour or arch as given: it becomes part of file names and URLs."""
    if not _NAME.match(value):
        raise UserError(f"ubuntu-mainline {what} {value!r}: expected a name like {examples}")
    return value


def packaged_keyring() -> Path | None:
    """The Kernel PPA keyring shipped with bisector, if there is one."""
    try:
        path = data_dir() / PACKAGED_KEYRING
    except InfraError:
        return None
    return path if path.is_file() else None


_local = threading.local()


def _thread_session() -> requests.Session:
    """One session per listing thread (a Session is not promised to be thread-safe)."""
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = _local.session = new_session()
    return s


class UbuntuMainlineSource:
    prefix = "ubuntu-mainline"

    def __init__(self, base_url: str | None = None, keyring: Path | None = None, *,
                 fingerprint: str | None = None, flavour: str | None = None,
                 arch: str | None = None) -> None:
        # several space-separated URLs: the first is listed, the others are mirrors a
        # download falls back to (the files are verified by CHECKSUMS either way)
        urls = (base_url or os.environ.get("BISECTOR_UBUNTU_MAINLINE_URL")
                or DEFAULT_URL).split()
        self.base_url, *mirrors = [u.rstrip("/") + "/" for u in urls]
        self.mirrors: list[str] = mirrors
        self.keyring, self.unchecked = self._keyring(keyring)
        fpr = fingerprint or os.environ.get("BISECTOR_UBUNTU_KEY_FINGERPRINT") \
            or KERNEL_PPA_FINGERPRINT
        self.fingerprint = re.sub(r"\s+", "", fpr).upper()
        if not _FINGERPRINT.match(self.fingerprint):
            raise UserError(f"ubuntu-mainline key fingerprint {fpr!r}: expected 40 hex digits")
        self.flavour = FLAVOUR
        self.arch = ARCH
        self.choose(flavour or os.environ.get("BISECTOR_UBUNTU_FLAVOUR"),
                    arch or os.environ.get("BISECTOR_UBUNTU_ARCH"))
        self.session = new_session()  # retries with backoff (429, 5xx)

    @staticmethod
    def _keyring(explicit: Path | None) -> tuple[Path | None, str]:
        """The keyring to check CHECKSUMS.gpg with, or None and why not."""
        if explicit is not None:
            return explicit, ""
        env = os.environ.get("BISECTOR_UBUNTU_KEYRING")
        if env == "none":
            return None, "BISECTOR_UBUNTU_KEYRING=none"
        if env:
            if not Path(env).is_file():
                raise UserError(f"BISECTOR_UBUNTU_KEYRING={env}: no such keyring")
            return Path(env), ""
        shipped = packaged_keyring()
        if shipped is not None:
            return shipped, ""
        return None, ("no keyring with the Ubuntu Kernel PPA key (bisector ships none; set "
                      "BISECTOR_UBUNTU_KEYRING to a gpgv keyring holding "
                      f"{KERNEL_PPA_FINGERPRINT})")

    def choose(self, flavour: str | None = None, arch: str | None = None) -> None:
        """Use another flavour / arch than the environment's (``kernels list`` options)."""
        if flavour:
            self.flavour = _name("flavour", flavour, "generic or lowlatency")
        if arch:
            self.arch = _name("arch", arch, "amd64 or arm64")

    # ---------------------------------------------------------------- index
    def index(self) -> dict[str, str]:
        """Version folders of the top page → their "last modified" date ("" if not shown)."""
        page = get_bytes(self.base_url, self.session).decode("utf-8", errors="replace")
        dates = dict(_INDEX_ROW.findall(page))
        return {h.rstrip("/"): dates.get(h.rstrip("/"), "")
                for h in links(page) if _VERSION_DIR.match(h)}

    def versions(self) -> list[str]:
        return sorted(self.index(), key=version_key)

    def listing(self, version: str, session: requests.Session | None = None) -> Listing:
        """What the folder of ``version`` holds now (fetched, never from the cache)."""
        s = session or self.session
        url = f"{self.base_url}{version}/"
        try:
            page = get_bytes(url, s).decode("utf-8", errors="replace")
        except DownloadError as exc:
            if "HTTP 404" in str(exc):
                raise UserError(f"ubuntu-mainline:{version}: no such version at {self.base_url}"
                                ) from None
            raise
        arch = self.arch
        text = page_text(page)
        build = _outcome(text, rf"(?:Test {re.escape(arch)}/build|Build for {re.escape(arch)})")
        self_tests = _outcome(text, rf"Test {re.escape(arch)}/self-tests")
        hrefs = links(page)
        in_arch = [h[len(arch) + 1:] for h in hrefs if h.startswith(f"{arch}/")
                   and h.endswith(".deb")]
        status = None
        if in_arch:  # the page links the arch folder's .debs: one request is enough
            url, names = f"{url}{arch}/", in_arch
        elif f"{arch}/" in hrefs:
            url = f"{url}{arch}/"
            names = links(get_bytes(url, s).decode("utf-8", errors="replace"))
            if build is None and "status" in names:
                try:
                    status = get_bytes(f"{url}status", s).decode().strip()
                except DownloadError:
                    status = None
        else:  # old layout: files at the top of the version folder
            names = hrefs
        debs = sorted({n for n in names if "/" not in n and _deb_arch(n) in (arch, "all")})
        return Listing(version=version, base_url=url, debs=debs, arch=arch, status=status,
                       build=build, self_tests=self_tests)

    # ---------------------------------------------------------------- cache
    def _cache_file(self, version: str) -> Path:
        return (cache_dir() / "ubuntu-mainline-index" / slug(f"{self.base_url}_{self.arch}")
                / f"{version}.json")

    def _store(self, listing: Listing, date: str) -> None:
        path = self._cache_file(listing.version)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps({"index_date": date, "listing": asdict(listing)}))
        except (OSError, BisectorError) as exc:  # a cache not written only costs time
            log.info("not caching %s: %s", path, exc)

    def _cached(self, version: str, date: str) -> Listing | None:
        """The cached listing, while the index's date of the folder is the one it was
        read at and it is younger than the TTL (longer when the index shows dates)."""
        path = self._cache_file(version)
        try:
            data = json.loads(path.read_text())
            age = time.time() - path.stat().st_mtime
            if data.get("index_date", "") != date or age >= (DATED_TTL if date else INDEX_TTL):
                return None
            return Listing(**data["listing"])
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def _states(self, versions: Sequence[str], index: dict[str, str]) -> dict[str, BuildState]:
        """Build state of each version: cached listings, the rest fetched in parallel."""
        out: dict[str, BuildState] = {}
        todo = []
        for v in versions:
            hit = self._cached(v, index.get(v, ""))
            if hit is not None:
                out[v] = hit.state(self.flavour)
            else:
                todo.append(v)

        def one(v: str) -> BuildState:
            try:
                fresh = self.listing(v, _thread_session())
                self._store(fresh, index.get(v, ""))
                return fresh.state(self.flavour)
            except (DownloadError, UserError) as exc:  # one unreadable folder: say so, go on
                return BuildState(False, f"folder not readable: {exc}")

        if len(todo) <= 1:
            out.update((v, one(v)) for v in todo)
            return out
        bar = Progress(f"ubuntu-mainline: reading {len(todo)} version folders", len(todo),
                       unit="")
        with ThreadPoolExecutor(max_workers=LIST_WORKERS) as pool:
            futures = {pool.submit(one, v): v for v in todo}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
        bar.close()
        return out

    # ---------------------------------------------------------------- listing with status
    def builds(self, selector: str | None = None, *, rc: bool | None = None,
               all_builds: bool = False) -> list[KernelEntry]:
        """``kernels list ubuntu-mainline [SELECTOR]``: versions with their build status.

        * no selector: every version, oldest first; failed builds only with
          ``all_builds`` (then noted ``failed: why``); rcs unless ``rc`` is False.
        * ``latest``, ``v6.1.y`` or ``v6.1`` (a series): the newest version shown
          under the same rules, except that rcs count only when ``rc`` is True
          (as in the mainline tools, "latest" means the latest release).
        * an exact version (``v6.1.5``, ``v6.2-rc3``): that one, whatever its status.

        Reading a folder costs a request, so listings are cached (see
        :meth:`_cached`), and a selector reads only the folders it needs.
        """
        index = self.index()
        versions = sorted(index, key=version_key)
        exact = None
        series = None
        if selector:
            ref = selector if selector.startswith("v") or selector == "latest" \
                else f"v{selector}"
            m = _SERIES.match(ref) or re.match(r"^v(\d+)\.(\d+)$", ref)
            if m:
                series = (int(m.group(1)), int(m.group(2)))
            elif ref != "latest":
                if not _VERSION_DIR.match(ref):
                    raise UserError(f"ubuntu-mainline {selector!r}: expected latest, a series "
                                    "(v6.1 or v6.1.y) or a version (v6.1.5, v6.2-rc3)")
                if ref not in index:
                    raise UserError(f"ubuntu-mainline:{ref}: no such version at "
                                    f"{self.base_url}")
                exact = ref
        if exact is not None:
            state = self._states([exact], index)[exact]
            return [self._entry(exact, state)]
        with_rc = rc if rc is not None else not selector
        candidates = [v for v in versions if with_rc or not is_rc(v)]
        if series is not None:
            candidates = [v for v in candidates if _series(v) == series]
        if selector:  # the newest one shown: walk down, reading only what is needed
            for v in reversed(candidates):
                state = self._states([v], index)[v]
                if state.usable or all_builds:
                    return [self._entry(v, state)]
            what = f"{series[0]}.{series[1]}.y" if series else "latest"
            raise UserError(f"ubuntu-mainline {selector}: no {'' if all_builds else 'usable '}"
                            f"{self.flavour} {self.arch} build for {what} "
                            f"({len(candidates)} version(s) looked at; --all shows failed ones)")
        states = self._states(candidates, index)
        return [self._entry(v, states[v]) for v in candidates
                if states[v].usable or all_builds]

    def _entry(self, version: str, state: BuildState) -> KernelEntry:
        if state.usable and state.build is not None:
            return KernelEntry(f"{self.prefix}:{version}", state.build.stamp, state.reason,
                               upstream=version)
        return KernelEntry(f"{self.prefix}:{version}", version, f"failed: {state.reason}",
                           upstream=version)

    # ---------------------------------------------------------------- verification
    def _checksums(self, listing: Listing) -> tuple[dict[str, str], str]:
        """sha256 sums from CHECKSUMS, and what was established about its signature."""
        url = f"{listing.base_url}CHECKSUMS"
        raw = get_bytes(url, self.session)
        if self.keyring is None:
            note = f"not checked: {self.unchecked}"
            log.warning("%s: signature %s", url, note)
        else:
            try:
                sig = get_bytes(f"{url}.gpg", self.session)
            except DownloadError as exc:
                raise SignatureRefused(f"{url}: no signature to check ({exc}); "
                                       "refusing unsigned checksums") from exc
            note = self._verify(url, raw, sig)
        return parse_checksums(raw.decode("utf-8", errors="replace")), note

    def _verify(self, url: str, data: bytes, sig: bytes) -> str:
        """gpgv's verdict on ``sig`` over ``data``, accepted only for the pinned key.

        gpgv alone accepts a signature by *any* key in the keyring; the
        ``VALIDSIG`` status line names the signing key (and its primary key),
        which must be :attr:`fingerprint`.
        """
        assert self.keyring is not None
        with tempfile.TemporaryDirectory() as tmp:
            d, s = Path(tmp) / "CHECKSUMS", Path(tmp) / "CHECKSUMS.gpg"
            d.write_bytes(data)
            s.write_bytes(sig)
            res = proc.run(["gpgv", "--status-fd", "1", "--keyring",
                            self.keyring.resolve(), s, d], timeout=60, check=False)
        status = [line.split()[1:] for line in res.stdout.splitlines()
                  if line.startswith("[GNUPG:] ")]
        kinds = {f[0] for f in status if f}
        why = (res.stderr.strip().splitlines() or ["no output"])[-1]
        if "BADSIG" in kinds:
            raise SignatureRefused(f"{url}: signature mismatch: CHECKSUMS is not what was "
                                   f"signed (tampered or corrupt): {why}")
        if res.returncode != 0 or "VALIDSIG" not in kinds:
            if "NO_PUBKEY" in kinds or "ERRSIG" in kinds:
                raise SignatureRefused(f"{url}: signed by a key that is not in "
                                       f"{self.keyring}: {why}")
            raise SignatureRefused(f"{url}: gpgv did not accept CHECKSUMS.gpg: {why}")
        signers = {x.upper() for f in status if f[0] == "VALIDSIG" for x in (f[1], f[-1])}
        if self.fingerprint not in signers:
            raise SignatureRefused(f"{url}: signed by {', '.join(sorted(signers))}, not by the "
                                   f"pinned key {self.fingerprint}: refused, although "
                                   f"{self.keyring} holds the signer's key")
        return f"verified: signed by {self.fingerprint}"

    # ---------------------------------------------------------------- KernelSource
    def _pick(self, ref: str) -> str:
        """A selector (``latest``, ``v6.1.y``) → the newest release whose build is
        usable (read fresh; rcs never: a spec names what a user would install)."""
        m = _SERIES.match(ref)
        versions = [v for v in self.versions() if not is_rc(v)
                    and (m is None or _series(v) == (int(m.group(1)), int(m.group(2))))]
        for v in reversed(versions):
            if self.listing(v).state(self.flavour).usable:
                return v
        raise UserError(f"ubuntu-mainline:{ref}: no usable {self.flavour} {self.arch} build "
                        f"({len(versions)} release(s) looked at)")

    def resolve(self, ref: str) -> KernelArtifact:
        selector = ref if ref == "latest" or _SERIES.match(ref) else None
        version = self._pick(ref) if selector else (ref if ref.startswith("v") else f"v{ref}")
        if not _VERSION_DIR.match(version):
            raise UserError(f"ubuntu-mainline:{ref}: expected a version like v5.7.1 or "
                            "v5.7-rc3, or latest / v5.7.y")
        listing = self.listing(version)
        state = listing.state(self.flavour)
        if not state.usable or state.build is None or state.build.image is None:
            raise KernelUnavailable(f"ubuntu-mainline:{version}: {state.reason}")
        build = state.build
        sums, signature = self._checksums(listing)
        debs = []
        for name in (build.image, build.modules):
            if name is None:
                continue
            if name not in sums:
                raise DownloadError(f"{listing.base_url}CHECKSUMS does not list {name}")
            primary = f"{listing.base_url}{name}"
            rel = primary.removeprefix(self.base_url)
            debs.append(download([primary, *(m + rel for m in self.mirrors)],
                                 cache_dir() / "downloads" / name, sums[name],
                                 session=self.session))
        meta: dict[str, object] = {
            "build": build.stamp, "url": listing.base_url, "distro": "ubuntu-mainline",
            "flavour": self.flavour, "arch": self.arch, "checksums_signature": signature}
        if selector:
            meta["selector"] = selector
        # mainline builds are vanilla kernels: the upstream tag is the version itself
        art = artifact_from_debs(f"ubuntu-mainline:{version}", debs, meta,
                                 kind="ubuntu-mainline", upstream=version)
        # a cached artifact keeps the meta of its first unpacking: this check is today's
        art.meta["checksums_signature"] = signature
        return art

    def available(self) -> list[KernelEntry]:
        """The versions, from the top page only: a bisection's plan needs no build status
        (a failed build is a SKIP when its step comes)."""
        return [KernelEntry(f"ubuntu-mainline:{v}", v, upstream=v) for v in self.versions()]

