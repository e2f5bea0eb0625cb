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

Along the data flow: :mod:`~bisector.kernel.ubuntu_index` reads the top page
and the version folders (with a cache), :mod:`~bisector.kernel.ubuntu_listing`
interprets a folder, :mod:`~bisector.kernel.ubuntu_checksums` checks
``CHECKSUMS``; this module picks a version and turns its .debs into an artifact.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import requests

from ..errors import DownloadError, InfraError, UserError
from ..paths import cache_dir
from ..resources import data_dir
from .base import KernelArtifact, KernelEntry, KernelUnavailable
from .debs import artifact_from_debs
from .fetch import download, new_session
from .ubuntu_checksums import ChecksumVerifier, SignatureRefused, parse_checksums
from .ubuntu_index import DATED_TTL, INDEX_TTL, LIST_WORKERS, FolderIndex
from .ubuntu_listing import (
    ARCH,
    FLAVOUR,
    SERIES,
    VERSION_DIR,
    Build,
    BuildState,
    Listing,
    is_rc,
    links,
    page_text,
    series_of,
    version_key,
)

__all__ = [
    "ARCH", "DATED_TTL", "DEFAULT_URL", "FLAVOUR", "INDEX_TTL", "KERNEL_PPA_FINGERPRINT",
    "LIST_WORKERS", "PACKAGED_KEYRING", "Build", "BuildState", "Listing", "SignatureRefused",
    "UbuntuMainlineSource", "is_rc", "links", "packaged_keyring", "page_text",
    "parse_checksums", "version_key",
]

DEFAULT_URL = "https://kernel.ubuntu.com/mainline/"
#: the "Kernel PPA <kernel-ppa@canonical.com>" signing key (key id 17C622B0), which
#: signs every CHECKSUMS of the mainline archive
KERNEL_PPA_FINGERPRINT = "60AA7B6F30434AE68E569963E50C6A0917C622B0"
#: a keyring holding that key, shipped in ``bisector/data/`` when someone adds it
#: (it is not shipped yet: the key could not be fetched where bisector is built,
#: and key material must come from the key's owner, not be made up)
PACKAGED_KEYRING = "ubuntu-kernel-ppa.gpg"

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")


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


def _fingerprint(given: str | None) -> str:
    """The signer to pin: ``given``, else the environment's, else the Kernel PPA key."""
    fpr = given or os.environ.get("BISECTOR_UBUNTU_KEY_FINGERPRINT") or KERNEL_PPA_FINGERPRINT
    out = re.sub(r"\s+", "", fpr).upper()
    if not _FINGERPRINT.match(out):
        raise UserError(f"ubuntu-mainline key fingerprint {fpr!r}: expected 40 hex digits")
    return out


def _selector(selector: str, index: dict[str, str], base_url: str
              ) -> tuple[str | None, tuple[int, int] | None]:
    """A ``kernels list`` selector → (the exact version it names, or the series it
    names); both None for ``latest``.  A version not in ``index`` is refused."""
    ref = selector if selector.startswith("v") or selector == "latest" else f"v{selector}"
    m = SERIES.match(ref) or re.match(r"^v(\d+)\.(\d+)$", ref)
    if m:
        return None, (int(m.group(1)), int(m.group(2)))
    if ref == "latest":
        return None, None
    if not VERSION_DIR.match(ref):
        raise UserError(f"ubuntu-mainline {selector!r}: expected latest, a series "
                        "(v6.1 or v6.1.y) or a version (v6.1.5, v6.2-rc3)")
    if ref not in index:
        raise UserError(f"ubuntu-mainline:{ref}: no such version at {base_url}")
    return ref, None


def _entry(version: str, state: BuildState) -> KernelEntry:
    """A version as ``kernels list`` shows it: its build's stamp, or why it failed."""
    spec = f"{UbuntuMainlineSource.prefix}:{version}"
    if state.usable and state.build is not None:
        return KernelEntry(spec, state.build.stamp, state.reason, upstream=version)
    return KernelEntry(spec, version, f"failed: {state.reason}", upstream=version)


class UbuntuMainlineSource:
    """``ubuntu-mainline:<version>``: picks a version, verifies and unpacks its .debs.

    Reading the archive is :attr:`folders`' work (a :class:`FolderIndex`),
    trusting ``CHECKSUMS`` is :attr:`verifier`'s (a :class:`ChecksumVerifier`);
    what stays here is the choice of version and build, and the artifact.
    """

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
        found, unchecked = _keyring(keyring)
        pinned = _fingerprint(fingerprint)
        self.flavour = FLAVOUR
        self.arch = ARCH
        self.choose(flavour or os.environ.get("BISECTOR_UBUNTU_FLAVOUR"),
                    arch or os.environ.get("BISECTOR_UBUNTU_ARCH"))
        self.session = new_session()  # retries with backoff (429, 5xx)
        self.folders = FolderIndex(self.base_url, self.session)
        self.verifier = ChecksumVerifier(found, unchecked, pinned, self.session)

    def choose(self, flavour: str | None = None, arch: str | None = None) -> None:
        """Use another flavour / arch than the environment's (``kernels list`` options)."""
        if flavour:
            self.flavour = _name("flavour", flavour, "generic or lowlatency")
        if arch:
            self.arch = _name("arch", arch, "amd64 or arm64")

    # ---------------------------------------------------------------- the archive
    def index(self) -> dict[str, str]:
        """Version folders of the top page → their "last modified" date ("" if not shown)."""
        return self.folders.index()

    def versions(self) -> list[str]:
        return self.folders.versions()

    def listing(self, version: str, session: requests.Session | None = None) -> Listing:
        """What the folder of ``version`` holds now for this arch (never from the cache)."""
        return self.folders.listing(version, self.arch, session)

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
        :class:`FolderIndex`), and a selector reads only the folders it needs.
        """
        index = self.index()
        exact, series = _selector(selector, index, self.base_url) if selector else (None, None)

        def states(versions: list[str]) -> dict[str, BuildState]:
            return self.folders.states(versions, index, self.arch, self.flavour)

        if exact is not None:
            return [_entry(exact, states([exact])[exact])]
        with_rc = rc if rc is not None else not selector
        candidates = [v for v in sorted(index, key=version_key) if with_rc or not is_rc(v)]
        if series is not None:
            candidates = [v for v in candidates if series_of(v) == series]
        if selector:  # the newest one shown: walk down, reading only what is needed
            for v in reversed(candidates):
                state = states([v])[v]
                if state.usable or all_builds:
                    return [_entry(v, state)]
            what = f"{series[0]}.{series[1]}.y" if series else "latest"
            raise UserError(f"ubuntu-mainline {selector}: no {'' if all_builds else 'usable '}"
                            f"{self.flavour} {self.arch} build for {what} "
                            f"({len(candidates)} version(s) looked at; --all shows failed ones)")
        found = states(candidates)
        return [_entry(v, found[v]) for v in candidates if found[v].usable or all_builds]

    # ---------------------------------------------------------------- KernelSource
    def _pick(self, ref: str) -> str:
        """A selector (``latest``, ``v6.1.y``) → the newest release whose build is
        usable (read fresh; rcs never: a spec names what a user would install)."""
        m = SERIES.match(ref)
        versions = [v for v in self.versions() if not is_rc(v)
                    and (m is None or series_of(v) == (int(m.group(1)), int(m.group(2))))]
        for v in reversed(versions):
            if self.listing(v).state(self.flavour).usable:
                return v
        raise UserError(f"ubuntu-mainline:{ref}: no usable {self.flavour} {self.arch} build "
                        f"({len(versions)} release(s) looked at)")

    def _download(self, listing: Listing, build: Build) -> tuple[list[Path], str]:
        """The build's .debs, each checked against the folder's ``CHECKSUMS`` (mirrors
        are tried in turn), and the verdict on that file's signature."""
        sums, signature = self.verifier.checksums(listing.base_url)
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
        return debs, signature

    def resolve(self, ref: str) -> KernelArtifact:
        selector = ref if ref == "latest" or SERIES.match(ref) else None
        version = self._pick(ref) if selector else (ref if ref.startswith("v") else f"v{ref}")
        if not VERSION_DIR.match(version):
            raise UserError(f"ubuntu-mainline:{ref}: expected a version like v5.7.1 or "
                            "v5.7-rc3, or latest / v5.7.y")
        listing = self.listing(version)
        state = listing.state(self.flavour)
        if not state.usable or state.build is None or state.build.image is None:
            raise KernelUnavailable(f"ubuntu-mainline:{version}: {state.reason}")
        build = state.build
        debs, signature = self._download(listing, build)
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
