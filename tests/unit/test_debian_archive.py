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

from bisector import cli
from bisector import kernel as kernels
from bisector.errors import ChecksumMismatch, DownloadError, UserError
from bisector.kernel.base import KernelArtifact
from bisector.kernel.debian import KEYRINGS, Archive, DebianSource
from bisector.stages import plan_list
from bisector.verdict import Outcome, Verdict
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


# ------------------------------------------------------------------ list bisections via snapshot
#
# The README's example, ``bisect --good debian:6.1.0-47 --bad debian:6.1.0-56``, when the
# configured suites carry only 6.1.0-56 and 6.1.0-57: the rest of bookworm's 6.1 kernels
# are on snapshot.debian.org only.

#: ABI → (package version, where): "live" is the configured bookworm, "snap" snapshot only
HISTORY = {45: ("6.1.158-1", "snap"), 47: ("6.1.170-1", "snap"), 50: ("6.1.176-1", "snap"),
           53: ("6.1.187-1", "snap"), 54: ("6.1.190-1", "snap"), 56: ("6.1.192-1", "live"),
           57: ("6.1.193-1", "live"), 58: ("6.1.200-1", "snap")}
README_PLAN = ["debian:6.1.0-47", "debian:6.1.0-50", "debian:6.1.0-53", "debian:6.1.0-54",
               "debian:6.1.0-56"]
GRE = Path(__file__).resolve().parents[2] / "reproducers" / "gre-ecn-mac-corruption.yaml"
GRE_CONFIG = "".join(f"CONFIG_{o}=y\n" for o in ("NET_NS", "VETH", "NET_IPGRE_DEMUX",
                                                 "NET_IPGRE", "PACKET", "EXT4_FS")).encode()


def image_name(abi: int, flavour: str = "amd64") -> str:
    return f"linux-image-6.1.0-{abi}-{flavour}-unsigned"


@pytest.fixture(scope="module")
def history_debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Deb]:
    """A real .deb per kernel of :data:`HISTORY` (and 6.1.0-56-cloud), with the options
    the GRE reproducer requires, so a CLI bisection can resolve any of them."""
    work = tmp_path_factory.mktemp("history")
    out = {}
    kernels = [(str(abi), "amd64", ver) for abi, (ver, _) in HISTORY.items()]
    for abi, flavour, ver in [*kernels, ("56", "cloud-amd64", "6.1.192-1")]:
        rel = f"6.1.0-{abi}-{flavour}"
        name = f"linux-image-{rel}-unsigned"
        deb = build_deb(work / f"{name}_{ver}_amd64.deb", name, ver,
                        {f"boot/vmlinuz-{rel}": fake_kernel(b"kernel " + rel.encode()),
                         f"boot/config-{rel}": GRE_CONFIG})
        out[rel] = (deb, name, ver)
    return out


@pytest.fixture
def history(tmp_cache: Path, tmp_path: Path, farm: SnapshotFarm,
            history_debs: dict[str, Deb], keys: dict[str, Signer],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[SnapshotFarm]:
    """The configured bookworm (6.1.0-56, -57, 56-cloud; signed) and snapshot with every
    kernel of :data:`HISTORY` (each first seen in bookworm-security at its own time),
    the headers, debug and cloud packages each version built, a bullseye backport of
    6.1 and trixie's 6.12 — the environment ``bisector`` itself reads."""
    live = [d for rel, d in history_debs.items() if rel.split("-")[1] in ("56", "57")]
    root = signed_archive(tmp_path / "bookworm", live, [keys["archive"]])
    for abi, (ver, _) in HISTORY.items():
        farm.publish("debian-security", f"2024{abi:04d}T000000Z", "bookworm-security",
                     [history_debs[f"6.1.0-{abi}-amd64"]], [keys["archive"]])
        farm.built("linux", ver, [f"linux-headers-6.1.0-{abi}-amd64",
                                  f"linux-image-6.1.0-{abi}-amd64-dbg",
                                  image_name(abi, "cloud-amd64")])
    # in range by version, but another line: bullseye's backport of 6.1, and 6.12
    farm.built("linux", "6.1.180-1~bpo11+1", ["linux-image-6.1.0-0.deb11.30-amd64-unsigned"])
    farm.built("linux", "6.12.41-1", ["linux-image-6.12.41+deb13-amd64-unsigned"])
    with serve(root) as url:
        monkeypatch.setenv("BISECTOR_DEBIAN_ARCHIVES", f"{url}=bookworm")
        monkeypatch.setenv("BISECTOR_DEBIAN_KEYRING", str(keys["archive"].keyring))
        yield farm


def test_readme_list_plan_reaches_an_endpoint_only_on_snapshot(history: SnapshotFarm) -> None:
    plan = plan_list("debian:6.1.0-47", "debian:6.1.0-56")
    first, last = plan.items[0], plan.items[-1]
    assert (first.spec, first.version, first.upstream) == ("debian:6.1.0-47", "6.1.170-1",
                                                           "v6.1.170")
    assert first.note == "snapshot, upstream v6.1.170"
    assert (last.spec, last.note) == ("debian:6.1.0-56", "bookworm, upstream v6.1.192")
    assert plan.note == "5 kernels along upstream series 6.1"


def test_snapshot_list_is_oldest_first(history: SnapshotFarm) -> None:
    """Snapshot lists versions newest first; the plan walks them oldest first."""
    plan = plan_list("debian:6.1.0-47", "debian:6.1.0-56")
    assert [e.spec for e in plan.items] == README_PLAN
    assert [e.upstream for e in plan.items] == ["v6.1.170", "v6.1.176", "v6.1.187",
                                                "v6.1.190", "v6.1.192"]


def test_snapshot_list_leaves_out_kernels_outside_the_endpoints(history: SnapshotFarm) -> None:
    """6.1.0-45 and -58 (before and after the endpoints), the cloud flavour and another
    line of the series (bullseye's 6.1.0-0.deb11.30) are not added; the configured
    suites' own kernels (6.1.0-57) stay."""
    entries = kernels.listing("debian", include=("debian:6.1.0-47", "debian:6.1.0-56"))
    assert [e.spec for e in entries] == [*README_PLAN, "debian:6.1.0-57"]


def test_snapshot_list_asks_only_for_versions_between_the_endpoints(
        history: SnapshotFarm) -> None:
    """One request for the endpoint's versions, one for the source's, one per version
    in between whose kernels are not known: not 45's, 58's, the backport's, 6.12's,
    nor the endpoints' own."""
    plan_list("debian:6.1.0-47", "debian:6.1.0-56")
    assert sorted(history.requests) == [f"/mr/binary/{image_name(47)}/",
                                        "/mr/package/linux/",
                                        "/mr/package/linux/6.1.176-1/binpackages",
                                        "/mr/package/linux/6.1.187-1/binpackages",
                                        "/mr/package/linux/6.1.190-1/binpackages"]


def test_second_list_plan_asks_snapshot_nothing(history: SnapshotFarm) -> None:
    """A resumed campaign plans its list again: the answers are in the cache."""
    first = plan_list("debian:6.1.0-47", "debian:6.1.0-56")
    history.requests.clear()
    again = plan_list("debian:6.1.0-47", "debian:6.1.0-56")
    assert history.requests == [] and again.items == first.items


def test_cached_version_list_is_asked_again_for_a_newer_endpoint(
        history: SnapshotFarm) -> None:
    """Uploads after the first plan (6.1.0-59, -60): a cached list of versions that lacks
    the new endpoint's version would miss 6.1.0-59 between the endpoints."""
    plan_list("debian:6.1.0-47", "debian:6.1.0-56")
    history.built("linux", "6.1.203-1", [image_name(59)])
    history.built("linux", "6.1.205-1", [image_name(60)])
    plan = plan_list("debian:6.1.0-54", "debian:6.1.0-60")
    assert [e.spec for e in plan.items] == ["debian:6.1.0-54", "debian:6.1.0-56",
                                            "debian:6.1.0-57", "debian:6.1.0-58",
                                            "debian:6.1.0-59", "debian:6.1.0-60"]


def test_list_prefers_the_configured_suites_for_an_abi_they_carry(
        history: SnapshotFarm) -> None:
    """Snapshot also saw an earlier upload of 6.1.0-56 (6.1.191-1): the configured
    suites' package is the one listed."""
    history.built("linux", "6.1.191-1", [image_name(56)])
    last = plan_list("debian:6.1.0-47", "debian:6.1.0-56").items[-1]
    assert (last.version, last.note) == ("6.1.192-1", "bookworm, upstream v6.1.192")


def test_list_walks_the_flavour_of_the_endpoints(history: SnapshotFarm) -> None:
    """Cloud endpoints walk cloud kernels: 6.1.182-1 built 6.1.0-52 without a cloud
    image, so the cloud list has no 6.1.0-52."""
    history.built("linux", "6.1.182-1", [image_name(52)])
    plan = plan_list("debian:6.1.0-47-cloud", "debian:6.1.0-56-cloud")
    assert [e.spec for e in plan.items] == [f"{s}-cloud" for s in README_PLAN]


def test_list_finds_kernels_of_the_endpoints_source_package(history: SnapshotFarm) -> None:
    """bullseye's 6.1 security kernels are built from ``linux-6.1``, not ``linux``: the
    endpoints' own source package is asked too (both endpoints only on snapshot)."""
    for n, ver in ((20, "6.1.90-1~deb11u1"), (21, "6.1.92-1~deb11u1"),
                   (22, "6.1.94-1~deb11u1")):
        history.built("linux-6.1", ver, [f"linux-image-6.1.0-0.deb11.{n}-amd64-unsigned"])
    plan = plan_list("debian:6.1.0-0.deb11.20", "debian:6.1.0-0.deb11.22")
    assert [e.spec for e in plan.items] == [f"debian:6.1.0-0.deb11.{n}" for n in (20, 21, 22)]


def test_list_endpoint_on_no_archive_is_a_user_error(history: SnapshotFarm) -> None:
    with pytest.raises(UserError, match=r"debian:6\.1\.0-46: no .* in the configured "
                                        r"archives .* nor on http://127\.0\.0\.1"):
        plan_list("debian:6.1.0-46", "debian:6.1.0-56")


def test_list_without_a_keyring_says_snapshot_needs_one(
        history: SnapshotFarm, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning reads only snapshot's API, but every kernel it adds would have to be
    verified later: without a keyring snapshot is not asked, and the error says so."""
    monkeypatch.setenv("BISECTOR_DEBIAN_KEYRING", "none")
    with pytest.raises(UserError, match=r"debian:6\.1\.0-47: no .* in the configured archives"
                                        r".*not asked: without a keyring"):
        plan_list("debian:6.1.0-47", "debian:6.1.0-56")
    assert history.requests == []


def test_cli_list_bisection_finds_a_kernel_only_on_snapshot(
        history: SnapshotFarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The README's command through the real CLI, the VM replaced: the first bad kernel
    (6.1.0-54) is one the configured suites dropped, resolved and verified through
    snapshot's signed bookworm-security index."""
    booted: dict[str, KernelArtifact] = {}

    def fake(art, repro, run_dir, opts, timer, say):  # type: ignore[no-untyped-def]
        booted[art.spec] = art
        bad = int(art.release.split("-")[1]) >= 54
        return Outcome(Verdict.BAD if bad else Verdict.GOOD, f"scripted for {art.release}")

    monkeypatch.setattr("bisector.runner.boot_and_test", fake)
    code = cli.main(["bisect", "--repro", str(GRE), "--good", "debian:6.1.0-47",
                     "--bad", "debian:6.1.0-56", "--report-dir", str(tmp_path / "report")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.splitlines()[0] == ("first bad kernel: debian:6.1.0-54 "
                                       "(last good: debian:6.1.0-53)")
    found = booted["debian:6.1.0-54"]
    assert found.meta["snapshot"].endswith("/archive/debian-security/20240054T000000Z")
    assert found.meta["verified_by"].startswith("sha256 from Packages of bookworm-security "
                                                "in the GPG-verified InRelease")
