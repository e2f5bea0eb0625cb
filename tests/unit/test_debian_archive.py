"""The Debian source's chain of trust and its reach into snapshot.debian.org.

Everything runs against 127.0.0.1: a local archive and a local stand-in for
snapshot.debian.org (:mod:`tests.fakes.snapshot_server`), both serving real
.debs (dpkg-deb) and ``InRelease`` files clearsigned with throw-away GPG keys
(:mod:`tests.fakes.gpg`), so gpgv checks real signatures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from bisector.errors import ChecksumMismatch, DownloadError, UserError
from bisector.kernel.debian import KEYRINGS, Archive, DebianSource
from tests.fakes.archive import (
    build_deb,
    debian_archive,
    fake_kernel,
    kernel_image_deb,
    serve,
    sha256,
)
from tests.fakes.gpg import Signer, clearsign, sign_suite, signer
from tests.fakes.snapshot_server import SnapshotFarm, serve_snapshot

Deb = tuple[Path, str, str]  # (file, package, version), as debian_archive takes them

#: the name forms users type: ref → (uname -r, package version, where snapshot first saw it)
FORMS = {
    "6.1.0-47": ("6.1.0-47-amd64", "6.1.180-1", "debian-security", "bookworm-security"),
    "6.12.41+deb13": ("6.12.41+deb13-amd64", "6.12.41-1", "debian", "trixie"),
    "6.12.90+deb13.1-cloud": ("6.12.90+deb13.1-cloud-amd64", "6.12.90-1", "debian",
                              "trixie-proposed-updates"),
    "6.12.22+bpo-rt": ("6.12.22+bpo-rt-amd64", "6.12.22-1~bpo12+1", "debian",
                       "bookworm-backports"),
    "6.1.0-0.deb11.13": ("6.1.0-0.deb11.13-amd64", "6.1.67-1~bpo11+1", "debian",
                         "bullseye-backports"),
}
#: forms the archive's package names did not match before (6.1.0-N, +debN already did)
NEW_FORMS = ["6.12.90+deb13.1-cloud", "6.12.22+bpo-rt", "6.1.0-0.deb11.13"]
STAMP = "20240115T091511Z"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Signer]]:
    """``archive`` (today's key), ``retired`` (one only the removed-keys keyring has) and
    ``stranger`` (in no keyring we pass)."""
    where = tmp_path_factory.mktemp("gpg")
    with ExitStack() as stack:
        yield {n: stack.enter_context(signer(where, n))
               for n in ("archive", "retired", "stranger")}


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Deb]:
    """One real kernel .deb per name form, and the 6.1.0-56 the live archive carries."""
    work = tmp_path_factory.mktemp("debs")
    out = {}
    for ref, (release, version, _, _) in {
            **FORMS, "6.1.0-56": ("6.1.0-56-amd64", "6.1.192-1", "", "")}.items():
        name = f"linux-image-{release}-unsigned"
        deb = kernel_image_deb(work / f"{name}_{version}_amd64.deb", release, version, name)
        out[ref] = (deb, name, version)
    return out


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BISECTOR_DEBIAN_ARCHIVES", "BISECTOR_DEBIAN_KEYRING",
                "BISECTOR_DEBIAN_SNAPSHOT"):
        monkeypatch.delenv(var, raising=False)


def signed_archive(root: Path, debs: list[Deb], signers: list[Signer],
                   suite: str = "bookworm") -> Path:
    debian_archive(root, suite, debs)
    sign_suite(root, suite, signers)
    return root


@pytest.fixture
def farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SnapshotFarm]:
    """An empty snapshot service, configured through ``BISECTOR_DEBIAN_SNAPSHOT``."""
    f = SnapshotFarm(tmp_path / "snapshot")
    with serve_snapshot(f) as url:
        monkeypatch.setenv("BISECTOR_DEBIAN_SNAPSHOT", url)
        yield f


@pytest.fixture
def live(tmp_path: Path, debs: dict[str, Deb], keys: dict[str, Signer]) -> Iterator[Archive]:
    """The configured archive: bookworm with 6.1.0-56 only, signed with today's key."""
    root = signed_archive(tmp_path / "live", [debs["6.1.0-56"]], [keys["archive"]])
    with serve(root) as url:
        yield Archive(url, ("bookworm",))


# ------------------------------------------------------------------ name forms

@pytest.mark.parametrize("ref", NEW_FORMS)
def test_archive_lists_every_abi_form(ref: str, tmp_cache: Path, tmp_path: Path,
                                      debs: dict[str, Deb], keys: dict[str, Signer]) -> None:
    """Point-release (+deb13.1), backports (+bpo) and bullseye's 0.deb11.N ABIs, in any
    flavour, are kernels of the configured archive like 6.1.0-N."""
    root = signed_archive(tmp_path / "a", [debs[r] for r in NEW_FORMS], [keys["archive"]])
    with serve(root) as url:
        src = DebianSource([Archive(url, ("bookworm",))], keyring=keys["archive"].keyring)
        art = src.resolve(ref)
    assert art.release == FORMS[ref][0]
    assert art.image.read_bytes().endswith(f"not-a-real-kernel-{FORMS[ref][0]}".encode())


# ------------------------------------------------------------------ snapshot.debian.org

def publish(farm: SnapshotFarm, deb: Deb, archive_name: str, suite: str,
            signers: list[Signer]) -> str:
    farm.publish(archive_name, STAMP, suite, [deb], signers)
    return hashlib.sha1(deb[0].read_bytes()).hexdigest()


@pytest.mark.parametrize("ref", list(FORMS))
def test_snapshot_resolves_an_abi_the_suites_dropped(
        ref: str, tmp_cache: Path, farm: SnapshotFarm, live: Archive,
        debs: dict[str, Deb], keys: dict[str, Signer]) -> None:
    release, version, archive_name, suite = FORMS[ref]
    sha1 = publish(farm, debs[ref], archive_name, suite, [keys["archive"]])
    art = DebianSource([live], keyring=keys["archive"].keyring).resolve(ref)
    assert art.release == release and art.meta["version"] == version
    assert art.meta["suite"] == suite
    assert art.meta["snapshot"].endswith(f"/archive/{archive_name}/{STAMP}")
    assert art.meta["sha256"] == sha256(debs[ref][0])
    assert art.meta["verified_by"].startswith(f"sha256 from Packages of {suite} in the "
                                              "GPG-verified InRelease")
    assert f"/file/{sha1}" in farm.requests
    assert art.image.read_bytes().endswith(f"not-a-real-kernel-{release}".encode())


def test_snapshot_file_must_match_the_signed_packages(
        tmp_cache: Path, tmp_path: Path, farm: SnapshotFarm, live: Archive,
        debs: dict[str, Deb], keys: dict[str, Signer]) -> None:
    """The API's SHA1 only locates the file: bytes that are not the ones the signed
    Packages names are discarded, even when /file/<sha1> serves them."""
    sha1 = publish(farm, debs["6.1.0-47"], "debian-security", "bookworm-security",
                   [keys["archive"]])
    other = tmp_path / "other.deb"
    other.write_bytes(debs["6.1.0-56"][0].read_bytes())
    farm.files[sha1] = other
    with pytest.raises(ChecksumMismatch, match="sha256 mismatch"):
        DebianSource([live], keyring=keys["archive"].keyring).resolve("6.1.0-47")
    assert not (tmp_cache / "kernels").exists()


def test_snapshot_index_signed_by_a_stranger_is_refused(
        tmp_cache: Path, farm: SnapshotFarm, live: Archive, debs: dict[str, Deb],
        keys: dict[str, Signer]) -> None:
    publish(farm, debs["6.1.0-47"], "debian-security", "bookworm-security",
            [keys["stranger"]])
    with pytest.raises(DownloadError, match="GPG signature check failed"):
        DebianSource([live], keyring=keys["archive"].keyring).resolve("6.1.0-47")
    assert not any(p.startswith("/file/") for p in farm.requests)


def test_snapshot_without_the_package_is_a_user_error(
        tmp_cache: Path, farm: SnapshotFarm, live: Archive, keys: dict[str, Signer]) -> None:
    with pytest.raises(UserError, match=r"debian:6\.1\.0-46: no .*available: 6\.1\.0-56\) "
                                        r"nor on http://127\.0\.0\.1"):
        DebianSource([live], keyring=keys["archive"].keyring).resolve("6.1.0-46")


def test_snapshot_is_not_asked_without_a_keyring(
        tmp_cache: Path, farm: SnapshotFarm, live: Archive, debs: dict[str, Deb],
        keys: dict[str, Signer]) -> None:
    """``BISECTOR_DEBIAN_KEYRING=none`` is for an unsigned local mirror: snapshot's API is
    not signed, so nothing it serves could be verified."""
    publish(farm, debs["6.1.0-47"], "debian-security", "bookworm-security",
            [keys["archive"]])
    with pytest.raises(UserError, match=r"snapshot\.debian\.org not asked: without a keyring"):
        DebianSource([live], keyring=None).resolve("6.1.0-47")
    assert farm.requests == []


def test_snapshot_answer_is_reused(tmp_cache: Path, farm: SnapshotFarm, live: Archive,
                                   debs: dict[str, Deb], keys: dict[str, Signer]) -> None:
    """A bisection resolves the same kernel at every step: the second time, snapshot is
    not asked again (its indexes never change; the .deb is in the cache)."""
    publish(farm, debs["6.1.0-47"], "debian-security", "bookworm-security",
            [keys["archive"]])
    first = DebianSource([live], keyring=keys["archive"].keyring).resolve("6.1.0-47")
    farm.requests.clear()
    again = DebianSource([live], keyring=keys["archive"].keyring).resolve("6.1.0-47")
    assert again.image == first.image and farm.requests == []


# ------------------------------------------------------------------ InRelease signatures

def test_unsigned_text_around_the_signed_block_is_not_parsed(
        tmp_cache: Path, tmp_path: Path, debs: dict[str, Deb],
        keys: dict[str, Signer]) -> None:
    """gpgv accepts an InRelease with lines before and after its signed block; a Packages.xz
    hash there (the attacker's index, naming the attacker's kernel) carries no weight."""
    genuine = signed_archive(tmp_path / "genuine", [debs["6.1.0-56"]], [keys["archive"]])
    _, name, _ = debs["6.1.0-56"]
    evil_deb = build_deb(tmp_path / "evil.deb", name, "6.1.192-9",
                         {"boot/vmlinuz-6.1.0-56-amd64": fake_kernel(b"evil")})
    served = tmp_path / "served"
    debian_archive(served, "bookworm", [(evil_deb, name, "6.1.192-9")])
    index = served / "dists/bookworm/main/binary-amd64/Packages.xz"
    (served / "dists/bookworm/InRelease").write_text(
        "Origin: attacker\n" + (genuine / "dists/bookworm/InRelease").read_text()
        + f"SHA256:\n {sha256(index)} {index.stat().st_size} main/binary-amd64/Packages.xz\n")
    with serve(served) as url:
        src = DebianSource([Archive(url, ("bookworm",))], keyring=keys["archive"].keyring)
        with pytest.raises(ChecksumMismatch, match=r"Packages\.xz: sha256 mismatch"):
            src.resolve("6.1.0-56")
    assert not (tmp_cache / "kernels").exists()


def test_a_key_in_any_keyring_of_the_list_verifies(
        tmp_cache: Path, tmp_path: Path, debs: dict[str, Deb],
        keys: dict[str, Signer]) -> None:
    """Old releases (snapshot's indexes) are signed by keys only the removed-keys keyring
    holds: every keyring given is one gpgv may verify with."""
    root = signed_archive(tmp_path / "a", [debs["6.1.0-56"]], [keys["retired"]])
    with serve(root) as url:
        src = DebianSource([Archive(url, ("bookworm",))],
                           keyring=[keys["archive"].keyring, keys["retired"].keyring])
        assert src.resolve("6.1.0-56").release == "6.1.0-56-amd64"


def test_keyring_variable_takes_a_list(tmp_cache: Path, tmp_path: Path,
                                       debs: dict[str, Deb], keys: dict[str, Signer],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = signed_archive(tmp_path / "a", [debs["6.1.0-56"]], [keys["retired"]])
    monkeypatch.setenv("BISECTOR_DEBIAN_KEYRING",
                       f"{keys['archive'].keyring}:{keys['retired'].keyring}")
    with serve(root) as url:
        src = DebianSource([Archive(url, ("bookworm",))])
        assert src.resolve("6.1.0-56").release == "6.1.0-56-amd64"


def test_default_keyrings_include_the_removed_keys() -> None:
    removed = Path("/usr/share/keyrings/debian-archive-removed-keys.gpg")
    if not removed.is_file():
        pytest.skip("debian-archive-keyring's removed-keys keyring is not installed")
    assert removed in KEYRINGS
    assert removed in DebianSource([Archive("http://127.0.0.1:9", ("bookworm",))]).keyrings


def test_an_extra_signature_by_an_unknown_key_is_accepted(
        tmp_cache: Path, tmp_path: Path, debs: dict[str, Deb],
        keys: dict[str, Signer]) -> None:
    """Debian signs with several keys; one the keyring lacks (gpgv exits 2) does not undo
    the good signature of one it has."""
    root = signed_archive(tmp_path / "a", [debs["6.1.0-56"]],
                          [keys["archive"], keys["stranger"]])
    with serve(root) as url:
        src = DebianSource([Archive(url, ("bookworm",))], keyring=keys["archive"].keyring)
        assert src.resolve("6.1.0-56").release == "6.1.0-56-amd64"


def test_two_signed_messages_in_one_inrelease_are_refused(
        tmp_cache: Path, tmp_path: Path, debs: dict[str, Deb],
        keys: dict[str, Signer]) -> None:
    """The tolerance above stops at one signed message: a second one appended (a replayed
    index, say) makes gpgv report an error, and the file is refused."""
    root = signed_archive(tmp_path / "a", [debs["6.1.0-56"]], [keys["archive"]])
    inrelease = root / "dists/bookworm/InRelease"
    inrelease.write_text(inrelease.read_text()
                         + clearsign("Suite: bookworm\nSHA256:\n", [keys["archive"]]))
    with serve(root) as url:
        src = DebianSource([Archive(url, ("bookworm",))], keyring=keys["archive"].keyring)
        with pytest.raises(DownloadError, match="GPG signature check failed"):
            src.resolve("6.1.0-56")
