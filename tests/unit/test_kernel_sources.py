"""Kernel fetchers against local HTTP archives serving real .deb files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bisector.errors import ChecksumMismatch, UserError
from bisector.kernel import KernelUnavailable, resolve, split_spec
from bisector.kernel.debian import Archive, DebianSource, release_sha256, strip_clearsign
from bisector.kernel.local import LocalSource
from bisector.kernel.ubuntu import UbuntuMainlineSource, links, parse_checksums, version_key
from tests.fakes.archive import (
    build_deb,
    debian_archive,
    fake_kernel,
    kernel_image_deb,
    serve,
    sha256,
)

# ------------------------------------------------------------------ Debian

@pytest.fixture
def debian_root(tmp_path: Path) -> Path:
    root = tmp_path / "debian"
    debs = []
    for abi, ver in (("6.1.0-55", "6.1.190-1"), ("6.1.0-56", "6.1.192-1"),
                     ("6.1.0-56", "6.1.192-2")):
        name = f"linux-image-{abi}-amd64-unsigned"
        deb = kernel_image_deb(tmp_path / f"{name}_{ver}_amd64.deb", f"{abi}-amd64", ver, name)
        debs.append((deb, name, ver))
    debian_archive(root, "bookworm", debs)
    return root


def test_debian_resolve_newest_version(tmp_cache: Path, debian_root: Path) -> None:
    with serve(debian_root) as url:
        src = DebianSource([Archive(url, ("bookworm",))], keyring=None)
        assert [e.spec for e in src.available()] == ["debian:6.1.0-55", "debian:6.1.0-56"]
        art = src.resolve("6.1.0-56")
    assert art.release == "6.1.0-56-amd64"
    assert art.meta["version"] == "6.1.192-2" and art.upstream == "v6.1.192"
    assert art.image.read_bytes().endswith(b"not-a-real-kernel-6.1.0-56-amd64")
    assert art.modules is not None and (art.modules / "modules.dep").exists()  # depmod ran
    assert art.config_value("VETH") == "m"


def test_debian_unknown_abi_lists_available(tmp_cache: Path, debian_root: Path) -> None:
    with serve(debian_root) as url:
        src = DebianSource([Archive(url, ("bookworm",))], keyring=None)
        with pytest.raises(UserError, match=r"debian:6\.1\.0-99: no .*available: 6\.1\.0-55, "
                                            r"6\.1\.0-56"):
            src.resolve("6.1.0-99")
        with pytest.raises(UserError, match="expected an ABI"):
            src.resolve("latest")


def test_debian_checksum_mismatch_is_never_unpacked(tmp_cache: Path, debian_root: Path) -> None:
    deb = next((debian_root / "pool").rglob("*6.1.0-55*.deb"))
    deb.write_bytes(deb.read_bytes() + b"tampered")
    with serve(debian_root) as url:
        src = DebianSource([Archive(url, ("bookworm",))], keyring=None)
        with pytest.raises(ChecksumMismatch, match="sha256 mismatch"):
            src.resolve("6.1.0-55")
    assert not list((tmp_cache / "downloads").glob("*6.1.0-55*.deb"))
    assert not (tmp_cache / "kernels").exists()


def test_release_parsing() -> None:
    signed = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: x\nSHA256:\n"
              " ab 12 main/binary-amd64/Packages.xz\n- -escaped\n"
              "-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n")
    body = strip_clearsign(signed)
    assert body.startswith("Suite: x") and "-escaped" in body and "PGP" not in body
    assert release_sha256(body) == {"main/binary-amd64/Packages.xz": ("ab", 12)}


# ------------------------------------------------------------------ Ubuntu mainline

def _ubuntu_build(folder: Path, version: str, stamp: str, *, modules: bool = True,
                  old_style: bool = False) -> list[Path]:
    rel = f"{version}-{stamp.split('-')[1].split('.')[0]}-generic"
    folder.mkdir(parents=True, exist_ok=True)
    if old_style:
        name = f"linux-image-{rel}_{stamp}_amd64.deb"
        return [kernel_image_deb(folder / name, rel, stamp, f"linux-image-{rel}")]
    img = folder / f"linux-image-unsigned-{rel}_{stamp}_amd64.deb"
    out = [build_deb(img, f"linux-image-unsigned-{rel}", stamp,
                     {f"boot/vmlinuz-{rel}": fake_kernel(b"kernel " + stamp.encode()),
                      f"boot/config-{rel}": b"CONFIG_VIRTIO_BLK=m\n"})]
    if modules:
        mod = folder / f"linux-modules-{rel}_{stamp}_amd64.deb"
        out.append(build_deb(mod, f"linux-modules-{rel}", stamp,
                             {f"lib/modules/{rel}/modules.order": b""}))
    return out


def _checksums(folder: Path, debs: list[Path]) -> None:
    lines = ["# Checksums-Sha1:", "0" * 40 + "  ignored.deb", "# Checksums-Sha256:"]
    lines += [f"{sha256(d)}  {d.name}" for d in debs]
    (folder / "CHECKSUMS").write_text("\n".join(lines) + "\n")


@pytest.fixture
def mainline_root(tmp_path: Path) -> Path:
    root = tmp_path / "mainline"
    # old layout, files at the top of the version folder
    _checksums(root / "v4.15", _ubuntu_build(root / "v4.15", "4.15.0", "4.15.0-041500.201801282230",
                                             old_style=True))
    # new layout with two builds of the same version in amd64/
    a = root / "v5.7.1" / "amd64"
    debs = _ubuntu_build(a, "5.7.1", "5.7.1-050701.202006071230")
    debs += _ubuntu_build(a, "5.7.1", "5.7.1-050701.202006101400")
    _checksums(a, debs)
    (a / "status").write_text("0\n")
    # rc name
    r = root / "v5.7-rc3" / "amd64"
    _checksums(r, _ubuntu_build(r, "5.7.0", "5.7.0-050700rc3.202004262131"))
    # failed build: status non-zero, no image
    f = root / "v5.8" / "amd64"
    f.mkdir(parents=True)
    (f / "status").write_text("2\n")
    (f / "CHECKSUMS").write_text("")
    # failed build in the old layout: only a build log
    (root / "v5.0").mkdir()
    (root / "v5.0" / "BUILD.LOG.amd64").write_text("error\n")
    return root


def test_mainline_versions_sorted(mainline_root: Path) -> None:
    with serve(mainline_root) as url:
        src = UbuntuMainlineSource(base_url=url)
        assert src.versions() == ["v4.15", "v5.0", "v5.7-rc3", "v5.7.1", "v5.8"]


def test_mainline_new_layout_picks_newest_build(tmp_cache: Path, mainline_root: Path) -> None:
    with serve(mainline_root) as url:
        art = UbuntuMainlineSource(base_url=url).resolve("v5.7.1")
    assert art.release == "5.7.1-050701-generic"
    assert art.image.read_bytes().endswith(b"kernel 5.7.1-050701.202006101400")
    assert art.meta["build"] == "5.7.1-050701.202006101400"
    assert art.modules is not None


def test_mainline_old_layout_and_rc(tmp_cache: Path, mainline_root: Path) -> None:
    with serve(mainline_root) as url:
        src = UbuntuMainlineSource(base_url=url)
        assert src.resolve("4.15").release == "4.15.0-041500-generic"
        assert src.resolve("v5.7-rc3").release == "5.7.0-050700rc3-generic"


def test_mainline_failed_and_missing(tmp_cache: Path, mainline_root: Path) -> None:
    with serve(mainline_root) as url:
        src = UbuntuMainlineSource(base_url=url)
        with pytest.raises(KernelUnavailable, match="build failed"):
            src.resolve("v5.8")
        with pytest.raises(KernelUnavailable, match="no complete amd64"):
            src.resolve("v5.0")
        with pytest.raises(UserError, match="no such version"):
            src.resolve("v9.9")


def test_mainline_checksum_mismatch(tmp_cache: Path, mainline_root: Path) -> None:
    folder = mainline_root / "v5.7.1" / "amd64"
    target = next(folder.glob("linux-image-unsigned-*202006101400*"))
    target.write_bytes(target.read_bytes()[:-10])
    with serve(mainline_root) as url, pytest.raises(ChecksumMismatch):
        UbuntuMainlineSource(base_url=url).resolve("v5.7.1")


def test_mainline_helpers() -> None:
    page = '<a href="?C=N;O=D">Name</a> <a href="../">Parent</a> <a href="v5.7.1/">v5.7.1/</a>'
    assert links(page) == ["v5.7.1/"]
    assert version_key("v5.7-rc3") < version_key("v5.7") < version_key("v5.7.1")
    assert parse_checksums("# x\n" + "a" * 64 + "  f.deb\n" + "b" * 40 + "  f.deb\n") == {
        "f.deb": "a" * 64}


# ------------------------------------------------------------------ local + registry

def test_local_deb_and_bzimage(tmp_cache: Path, tmp_path: Path) -> None:
    deb = kernel_image_deb(tmp_path / "k.deb", "6.1.0-9-amd64", "6.1.1-1")
    art = LocalSource().resolve(str(deb))
    assert art.release == "6.1.0-9-amd64"
    bz = bytearray(0x400)
    bz[0x202:0x206] = b"HdrS"
    bz[0x20E:0x210] = (0x300 - 0x200).to_bytes(2, "little")
    bz[0x300:0x300 + 20] = b"6.1.192-bisector (x)"
    (tmp_path / "bzImage").write_bytes(bytes(bz))
    art = resolve(f"local:{tmp_path / 'bzImage'}")
    assert art.release == "6.1.192-bisector" and art.modules is None
    (tmp_path / "junk").write_bytes(b"hello")
    with pytest.raises(UserError, match="not a bzImage"):
        LocalSource().resolve(str(tmp_path / "junk"))
    with pytest.raises(UserError, match="does not exist"):
        LocalSource().resolve(str(tmp_path / "missing.deb"))


def test_corrupt_deb_is_a_clear_error(tmp_cache: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"!<arch>\ngarbage")
    with pytest.raises(UserError, match=r"not a valid \.deb"):
        LocalSource().resolve(str(bad))


def test_spec_errors() -> None:
    with pytest.raises(UserError, match="expected SOURCE:REF"):
        split_spec("6.1")
    with pytest.raises(UserError, match="unknown source 'fedora'"):
        split_spec("fedora:40")
    with pytest.raises(UserError, match="expected SOURCE:REF"):
        split_spec("debian:")  # a known source with nothing to resolve
