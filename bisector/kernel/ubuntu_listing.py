"""What one folder of the Ubuntu mainline archive says: its .debs and its build results.

The archive's layout, and why a build's usability is read from the page text
and the .debs rather than from ``<arch>/status``, are described in
:mod:`bisector.kernel.ubuntu`.  This module holds the facts of a folder
(:class:`Listing`, plain data that is cached as JSON), their interpretation
for a flavour (:meth:`Listing.state`), and :func:`read_listing`, which fetches
them; it knows nothing of caching, checksums or downloads.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import requests

from ..errors import DownloadError, UserError
from .fetch import get_bytes

ARCH = "amd64"
FLAVOUR = "generic"

#: ``v5.7``, ``v5.7-rc3``, ``v5.7.1``; not ``v5.7.1-rc1`` (no such line to walk), not
#: suffixed or four-part names (see :mod:`bisector.kernel.ubuntu`)
VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)(?:\.(\d+)|-rc(\d+))?/?$")
#: a series selector, ``v6.1.y`` / ``6.1.y`` (listings also take ``v6.1``)
SERIES = re.compile(r"^v?(\d+)\.(\d+)\.[yx]$")
#: linux-image-unsigned-5.7.1-050701-generic_5.7.1-050701.202006071230_amd64.deb,
#: linux-image-4.15.0-041500-generic_4.15.0-041500.201801282230_amd64.deb (old builds),
#: linux-image-unsigned-6.4.3-060403-generic-64k_…_arm64.deb,
#: linux-headers-6.1.1-060101_6.1.1-060101.202212211831_all.deb (no flavour)
_DEB = re.compile(
    r"^linux-(?P<kind>image-unsigned|image|modules|headers)-(?P<rel>\d+\.\d+\.\d+-\d+(?:rc\d+)?)"
    r"(?:-(?P<flav>[a-z][a-z0-9]*(?:-[a-z0-9]+)*))?_(?P<ver>[^_]+)_(?P<arch>[a-z0-9]+)\.deb$")


def version_key(name: str) -> tuple[int, int, int, int]:
    """Sort key: v5.7-rc3 < v5.7 < v5.7.1."""
    m = VERSION_DIR.match(name.rstrip("/"))
    if not m:
        return (0, 0, 0, 0)
    major, minor, patch, rc = m.groups()
    return (int(major), int(minor), int(patch or 0) * 1000 + (0 if rc else 999),
            int(rc or 0))


def is_rc(version: str) -> bool:
    return "-rc" in version


def series_of(version: str) -> tuple[int, int]:
    """``v6.1.5`` → (6, 1): the series a ``v6.1.y`` selector matches."""
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


def _outcome(text: str, pattern: str) -> str | None:
    """``succeeded`` if the text says so anywhere (a rebuild may follow a failure),
    else ``failed`` if it says that, else None (the page does not say)."""
    found = set(re.findall(pattern + r" (succeeded|failed)", text))
    return "succeeded" if "succeeded" in found else ("failed" if found else None)


def _deb_arch(name: str) -> str | None:
    m = _DEB.match(name)
    return m.group("arch") if m else None


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


def read_listing(base_url: str, version: str, arch: str,
                 session: requests.Session) -> Listing:
    """What the folder of ``version`` under ``base_url`` holds now for ``arch``.

    One request when the page links the arch folder's .debs (the layout since
    v5.6.18); the arch folder's own page, and its ``status`` only when the page
    does not say how the build went, otherwise; old folders keep the files at
    their top.  A missing folder is the user's error (no such version).
    """
    url = f"{base_url}{version}/"
    try:
        page = get_bytes(url, session).decode("utf-8", errors="replace")
    except DownloadError as exc:
        if "HTTP 404" in str(exc):
            raise UserError(f"ubuntu-mainline:{version}: no such version at {base_url}"
                            ) from None
        raise
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
        names = links(get_bytes(url, session).decode("utf-8", errors="replace"))
        if build is None and "status" in names:
            try:
                status = get_bytes(f"{url}status", session).decode().strip()
            except DownloadError:
                status = None
    else:  # old layout: files at the top of the version folder
        names = hrefs
    debs = sorted({n for n in names if "/" not in n and _deb_arch(n) in (arch, "all")})
    return Listing(version=version, base_url=url, debs=debs, arch=arch, status=status,
                   build=build, self_tests=self_tests)
