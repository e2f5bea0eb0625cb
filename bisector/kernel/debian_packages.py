"""The names of Debian's kernel packages: what a ``debian:<ref>`` asks for and what an index lists.

Shared by the archive index reader (:mod:`bisector.kernel.debian_index`), the
snapshot.debian.org fallback (:mod:`bisector.kernel.debian_snapshot`) and the
source that ties them together (:mod:`bisector.kernel.debian`): the ABI and
flavour grammar, the records an index yields (:class:`Package`), and how a
kernel is shown in a listing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from debian.debian_support import Version

from ..errors import UserError
from .base import KernelEntry

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


def missing(ref: str, want: KernelRef, pkgs: list[Package]) -> str:
    """The sentence for an ABI the configured suites (``pkgs``) do not carry."""
    known = sorted({p.abi for p in pkgs if p.flavour == ARCH}, key=Version)
    return (f"debian:{ref}: no {want.package} in the configured archives "
            f"(available: {', '.join(known)})")


def entry(p: Package) -> KernelEntry:
    """A configured suite's kernel as ``kernels list`` and a list bisection show it."""
    return KernelEntry(KernelRef(p.abi, p.flavour).spec, p.version,
                       f"{p.suite}, upstream {p.upstream}", upstream=p.upstream)


def entry_from_snapshot(spec: str, version: str) -> KernelEntry:
    """A kernel only snapshot.debian.org knows (nothing about it is verified yet)."""
    up = upstream_of(version)
    return KernelEntry(spec, version, f"snapshot, upstream {up}", upstream=up)
