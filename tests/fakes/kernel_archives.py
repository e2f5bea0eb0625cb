"""Whole local kernel archives (real .debs) laid out as Debian and Ubuntu mainline serve them.

Built on :mod:`tests.fakes.archive`: every kernel is a genuine .deb made with
dpkg-deb, so the fetchers download, verify (sha256 from ``Packages`` /
``CHECKSUMS``) and unpack them as they would from the real archives.  Serve
the returned directory with :func:`tests.fakes.archive.serve`.

:func:`mainline_kernels` is the minimal mainline layout (folder listings only);
:func:`mainline_archive` serves the pages kernel.ubuntu.com serves (header text
with build results, other arches and flavours, failed builds that left only
headers, skipped folder names, ``CHECKSUMS.gpg``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.archive import build_deb, debian_archive, fake_kernel, sha256


def config_text(options: Iterable[str]) -> bytes:
    """A kernel .config with ``options`` built in (``NET_NS`` → ``CONFIG_NET_NS=y``)."""
    return "".join(f"CONFIG_{o.removeprefix('CONFIG_')}=y\n" for o in options).encode()


def debian_kernels(root: Path, work: Path, kernels: Mapping[int, str], config: bytes,
                   suite: str = "bookworm") -> Path:
    """``root``: an archive with ``linux-image-6.1.0-<abi>-amd64-unsigned`` for each
    ``abi → Debian version`` (``54 → "6.1.190-1"``); the image's bytes name its release."""
    debs = []
    for abi, ver in kernels.items():
        rel = f"6.1.0-{abi}-amd64"
        name = f"linux-image-{rel}-unsigned"
        deb = build_deb(work / f"{name}_{ver}_amd64.deb", name, ver,
                        {f"boot/vmlinuz-{rel}": fake_kernel(b"kernel " + rel.encode()),
                         f"boot/config-{rel}": config})
        debs.append((deb, name, ver))
    debian_archive(root, suite, debs)
    return root


_VERSION = re.compile(r"^v(\d+)\.(\d+)(?:\.(\d+))?(?:-rc(\d+))?$")


def mainline_release(version: str) -> tuple[str, str]:
    """``v5.7-rc2`` → (``5.7.0-050700rc2-generic``, package version
    ``5.7.0-050700rc2.202001010000``), the way kernel.ubuntu.com names its builds."""
    m = _VERSION.match(version)
    if m is None:
        raise ValueError(f"not a mainline version: {version}")
    major, minor, patch, rc = m.groups()
    base = f"{major}.{minor}.{patch or 0}"
    abi = f"{int(major):02d}{int(minor):02d}{int(patch or 0):02d}" + (f"rc{rc}" if rc else "")
    return f"{base}-{abi}-generic", f"{base}-{abi}.202001010000"


def mainline_kernels(root: Path, versions: Iterable[str], config: bytes,
                     failed: Iterable[str] = ()) -> Path:
    """``root``: a mainline archive in the current layout (``vX/amd64/`` with a
    ``status`` file and ``CHECKSUMS``), an image and a modules .deb per version;
    a version in ``failed`` is a failed build (status 2, no .debs)."""
    failed = set(failed)
    for version in versions:
        folder = root / version / "amd64"
        folder.mkdir(parents=True)
        if version in failed:
            (folder / "status").write_text("2\n")
            (folder / "CHECKSUMS").write_text("")
            continue
        rel, stamp = mainline_release(version)
        img = build_deb(folder / f"linux-image-unsigned-{rel}_{stamp}_amd64.deb",
                        f"linux-image-unsigned-{rel}", stamp,
                        {f"boot/vmlinuz-{rel}": fake_kernel(b"kernel " + rel.encode()),
                         f"boot/config-{rel}": config})
        mods = build_deb(folder / f"linux-modules-{rel}_{stamp}_amd64.deb",
                         f"linux-modules-{rel}", stamp,
                         {f"lib/modules/{rel}/modules.order": b""})
        # build_deb's staging directories must not be in the listing
        for d in (folder / f".{img.name}.root", folder / f".{mods.name}.root"):
            shutil.rmtree(d, ignore_errors=True)
        lines = ["# Checksums-Sha256:"] + [f"{sha256(d)}  {d.name}" for d in (img, mods)]
        (folder / "CHECKSUMS").write_text("\n".join(lines) + "\n")
        (folder / "status").write_text("0\n")
    return root



# ------------------------------------------------------------------ a mainline archive as served

@dataclass(frozen=True)
class MainlineFolder:
    """One version folder of :func:`mainline_archive`, as kernel.ubuntu.com lays it out."""

    version: str
    #: the amd64 result: ``built``; ``self-tests-failed`` (``status`` 1, the packages are
    #: there); ``failed`` (``status`` 2, only the headers were packaged)
    amd64: str = "built"
    #: amd64 flavours built (Ubuntu stopped building lowlatency mainline kernels ~v5.18)
    flavours: tuple[str, ...] = ("generic",)
    #: ``arch-dirs`` (per-arch folders, since v5.6.18 / v5.7-rc7) or ``flat`` (files at
    #: the top of the folder, ``BUILD.LOG.<arch>``)
    layout: str = "arch-dirs"
    #: the folder's "last modified" on the top index
    date: str = "2023-01-02 03:04"


#: folders of the real top index that are not versions a bisection walks: branch builds,
#: suffixed builds, four-part 2.6 versions
MAINLINE_SKIPPED = ("daily", "drm-tip", "v2.6.27.61", "v4.2-rc1-unstable", "v4.2.8-ckt7-wily",
                    "v4.4-rc2+cod1", "v4.4.10-xenial", "v5.12-rc1-dontuse")

_ROW = ('<tr><td valign="top"><img src="/icons/{icon}.gif" alt="[{alt}]"></td><td>'
        '<a href="{href}">{href}</a></td><td align="right">{date}  </td>'
        '<td align="right">{size}</td><td>&nbsp;</td></tr>')


def _autoindex(title: str, header: str, rows: Iterable[tuple[str, str, str]]) -> str:
    """An Apache autoindex page (HEADER.html inlined above the table, names sorted the
    way Apache sorts them, so v5.10.10/ comes before v5.10.2/)."""
    lines = [f"<html><head><title>Index of {title}</title></head><body>",
             f"<h1>Index of {title}</h1>", header, "<table>",
             '<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified'
             '</a></th><th><a href="?C=S;O=A">Size</a></th></tr>',
             '<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td>'
             '<td><a href="/">Parent Directory</a></td><td>&nbsp;</td><td align="right">  - '
             '</td><td>&nbsp;</td></tr>']
    for href, date, size in sorted(rows):
        folder = href.endswith("/")
        lines.append(_ROW.format(icon="folder" if folder else "unknown",
                                 alt="DIR" if folder else "   ", href=href, date=date,
                                 size="  - " if folder else size))
    lines += ["</table>", "<address>Apache/2.4.29 (Ubuntu) Server at kernel.ubuntu.com "
              "Port 443</address>", "</body></html>"]
    return "\n".join(lines) + "\n"


def _placeholder(path: Path, what: str) -> Path:
    """A package nothing unpacks (headers, other arches): listed and checksummed only."""
    path.write_bytes(f"placeholder {what}: never unpacked\n".encode())
    return path


def _checksums_file(folder: Path, files: list[Path],
                    sign: Callable[[Path], None] | None) -> None:
    lines = ["# Checksums-Sha1:"]
    lines += [f"{hashlib.sha1(f.read_bytes()).hexdigest()}  {f.name}" for f in files]
    lines += ["# Checksums-Sha256:"] + [f"{sha256(f)}  {f.name}" for f in files]
    (folder / "CHECKSUMS").write_text("\n".join(lines) + "\n")
    if sign is not None:
        sign(folder / "CHECKSUMS")


def _kernel_debs(folder: Path, version: str, flavour: str, arch: str, config: bytes,
                 *, modules_in_image: bool = False, unsigned: bool = True) -> list[Path]:
    rel, stamp = mainline_release(version)
    rel = rel.removesuffix("-generic") + f"-{flavour}"
    files = {f"boot/vmlinuz-{rel}": fake_kernel(f"kernel {rel} {arch}".encode()),
             f"boot/config-{rel}": config}
    if modules_in_image:
        files[f"lib/modules/{rel}/modules.order"] = b""
    kind = "image-unsigned" if unsigned else "image"
    img = build_deb(folder / f"linux-{kind}-{rel}_{stamp}_{arch}.deb", f"linux-{kind}-{rel}",
                    stamp, files)
    out = [img]
    if not modules_in_image:
        out.append(build_deb(folder / f"linux-modules-{rel}_{stamp}_{arch}.deb",
                             f"linux-modules-{rel}", stamp,
                             {f"lib/modules/{rel}/modules.order": b""}))
    for deb in out:  # build_deb's staging directories must not be in the listing
        shutil.rmtree(deb.parent / f".{deb.name}.root", ignore_errors=True)
    return out


def _headers(folder: Path, version: str, flavours: Iterable[str], arch: str) -> list[Path]:
    rel, stamp = mainline_release(version)
    abi = rel.removesuffix("-generic")
    out = [_placeholder(folder / f"linux-headers-{abi}_{stamp}_all.deb", "headers")]
    out += [_placeholder(folder / f"linux-headers-{abi}-{f}_{stamp}_{arch}.deb", "headers")
            for f in flavours]
    return out


def _links(prefix: str, files: Iterable[Path]) -> list[str]:
    return [f'  <a href="{prefix}{f.name}">{prefix}{f.name}</a>' for f in files
            if f.name.endswith(".deb")]


def _arch_dirs_folder(top: Path, f: MainlineFolder, config: bytes,
                      sign: Callable[[Path], None] | None) -> tuple[list[str], list[str]]:
    """Per-arch folders (amd64 as asked, arm64 built, ppc64el failed): header lines and
    the top folder's entries."""
    v = f.version
    header = []
    amd64 = top / "amd64"
    amd64.mkdir(parents=True)
    if f.amd64 == "failed":
        debs = _headers(amd64, v, ["generic"], "amd64")
        status, rc = "2", 2
    else:
        debs = _headers(amd64, v, f.flavours, "amd64")
        for flavour in f.flavours:
            debs += _kernel_debs(amd64, v, flavour, "amd64", config)
        status, rc = ("1", 0) if f.amd64 == "self-tests-failed" else ("0", 0)
    (amd64 / "status").write_text(status + "\n")
    (amd64 / "log").write_text(f"build {'failed' if rc else 'succeeded'}\n")
    _checksums_file(amd64, debs, sign)
    header.append(f"Test amd64/build {'failed' if rc else 'succeeded'} (rc={rc}, on=amd64, "
                  "time=0:16:43, log=amd64/log)")
    header += _links("amd64/", sorted(debs))
    if f.amd64 != "failed":
        ok = f.amd64 == "built"
        header.append(f"Test amd64/self-tests {'succeeded' if ok else 'failed'} "
                      f"(rc={0 if ok else 1}, on=amd64, time=0:00:32, "
                      "log=amd64/self-tests/log)")
    arm64 = top / "arm64"
    arm64.mkdir()
    rel, stamp = mainline_release(v)
    abi = rel.removesuffix("-generic")
    arm = _headers(arm64, v, ["generic", "generic-64k"], "arm64")
    for flavour in ("generic", "generic-64k"):
        for kind in ("image-unsigned", "modules"):
            arm.append(_placeholder(arm64 / f"linux-{kind}-{abi}-{flavour}_{stamp}_arm64.deb",
                                    "arm64 kernel"))
    (arm64 / "status").write_text("0\n")
    _checksums_file(arm64, arm, sign)
    header.append("Test arm64/build succeeded (rc=0, on=arm64, time=0:22:16, log=arm64/log)")
    header += _links("arm64/", sorted(arm))
    ppc = top / "ppc64el"
    ppc.mkdir()
    (ppc / "status").write_text("2\n")
    (ppc / "log").write_text("build failed\n")
    header.append("Test ppc64el/build failed (rc=2, on=ppc64el, time=0:05:10, "
                  "log=ppc64el/log)")
    return header, ["amd64/", "arm64/", "ppc64el/"]


def _flat_folder(top: Path, f: MainlineFolder, config: bytes,
                 sign: Callable[[Path], None] | None) -> tuple[list[str], list[str]]:
    """Files at the top (old builds): ``linux-image`` with its modules inside,
    ``BUILD.LOG.<arch>``, one CHECKSUMS for every arch."""
    top.mkdir(parents=True)
    debs = _headers(top, f.version, f.flavours, "amd64")
    if f.amd64 != "failed":
        for flavour in f.flavours:
            debs += _kernel_debs(top, f.version, flavour, "amd64", config,
                                 modules_in_image=True, unsigned=False)
    word = "failed" if f.amd64 == "failed" else "succeeded"
    (top / "BUILD.LOG.amd64").write_text(f"build {word}\n")
    (top / "BUILD.LOG.i386").write_text("build failed\n")
    _checksums_file(top, debs, sign)
    header = [f"Build for amd64 {word} (see BUILD.LOG.amd64):"]
    header += _links("", sorted(debs))
    header.append("Build for i386 failed (see BUILD.LOG.i386):")
    names = [d.name for d in debs] + ["BUILD.LOG.amd64", "BUILD.LOG.i386", "CHECKSUMS"]
    if sign is not None:
        names.append("CHECKSUMS.gpg")
    return header, names


def mainline_archive(root: Path, folders: Iterable[MainlineFolder], config: bytes,
                     *, sign: Callable[[Path], None] | None = None) -> Path:
    """``root``: a mainline archive the way kernel.ubuntu.com serves it, for the
    fetcher's parsing of real pages (see :mod:`bisector.kernel.ubuntu`):

    * the top page is an Apache autoindex with header text, dates, and the folders
      of :data:`MAINLINE_SKIPPED` among the versions (stable releases interleave);
    * a version folder's page inlines its HEADER.html: ``Test amd64/build succeeded``
      (or ``Build for amd64 succeeded`` in the flat layout) followed by links to the
      .debs, the self-test result, arm64 (generic, generic-64k) built and ppc64el
      failed;
    * each arch folder has ``CHECKSUMS`` (sha1 and sha256 sections), ``CHECKSUMS.gpg``
      when ``sign`` is given (called with the CHECKSUMS path, it writes the detached
      signature next to it), ``status`` and ``log``.

    amd64 kernels are genuine .debs (with ``config``); headers and other arches'
    packages are placeholders nothing unpacks.  Pages are ``index.html`` files, which
    :func:`tests.fakes.archive.serve` sends for a folder as Apache would its listing.
    """
    rows = []
    for f in folders:
        top = root / f.version
        if f.layout == "flat":
            lines, names = _flat_folder(top, f, config, sign)
        else:
            lines, names = _arch_dirs_folder(top, f, config, sign)
        header = "<pre>\n" + "\n".join([
            "These binary packages represent builds of the mainline or stable Linux kernel "
            "tree at the commit below:", "", f"  {f.version} (0123456789abcdef0123456789abcd"
            "ef01234567)", "", "To obtain the source from which they are built fetch the "
            "commit below:", "", "  git://git.launchpad.net/~ubuntu-kernel-test/ubuntu/"
            f"+source/linux/+git/mainline-crack cod/mainline/{f.version}", "", *lines]) \
            + "\n</pre>"
        (top / "HEADER.html").write_text(header + "\n")
        (top / "index.html").write_text(_autoindex(
            f"/mainline/{f.version}", header,
            [(n, f.date, "1.2M") for n in [*names, "HEADER.html"]]))
        rows.append((f"{f.version}/", f.date, "  - "))
    for name in MAINLINE_SKIPPED:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "HEADER.html").write_text("not a version bisector walks\n")
        rows.append((f"{name}/", "2019-05-06 07:08", "  - "))
    header = ('<p>Mainline kernel builds of the upstream tree, for testing only: '
              '<a href="https://wiki.ubuntu.com/Kernel/MainlineBuilds">MainlineBuilds</a>'
              '. Builds for v5.6.18 and later keep their packages in per-arch folders.</p>')
    (root / "index.html").write_text(_autoindex("/mainline", header, rows))
    return root
