"""Ubuntu mainline fetcher against a local archive laid out like kernel.ubuntu.com.

The archive (:func:`tests.fakes.kernel_archives.mainline_archive`) has the real
pages' header text, per-arch folders, failed builds that left only headers, a
build whose self-tests failed, stable releases that interleave in Apache's
order, and ``CHECKSUMS.gpg`` signed by a throw-away key that the tests pin in
place of the Kernel PPA key.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bisector.cli import main
from bisector.errors import UserError
from bisector.kernel import KernelEntry, KernelUnavailable
from bisector.kernel import ubuntu as mainline
from bisector.kernel.ubuntu import SignatureRefused, UbuntuMainlineSource
from tests.fakes.archive import serve
from tests.fakes.gpg import Signer, signer
from tests.fakes.kernel_archives import MainlineFolder, config_text, mainline_archive

CONFIG = config_text(["VIRTIO_BLK", "EXT4_FS"])
FOLDERS = [
    MainlineFolder("v5.4", layout="flat", flavours=("generic", "lowlatency"),
                   date="2019-11-25 01:02"),
    MainlineFolder("v5.10", date="2020-12-14 01:02"),
    MainlineFolder("v5.10.2", date="2020-12-21 01:02"),
    MainlineFolder("v5.10.5", amd64="failed", date="2021-01-06 01:02"),
    MainlineFolder("v5.10.10", amd64="self-tests-failed", date="2021-01-23 01:02"),
    MainlineFolder("v5.11-rc1", date="2020-12-28 01:02"),
    MainlineFolder("v5.11", amd64="failed", date="2021-02-15 01:02"),
]


def fingerprint(s: Signer) -> str:
    out = s.gpg("--with-colons", "--list-keys", s.uid)
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


class Keys:
    """The pinned key (standing in for the Kernel PPA key), another key, and a keyring
    that holds both: pinning must refuse the other key although gpgv would accept it."""

    def __init__(self, ppa: Signer, other: Signer, both: Path) -> None:
        self.ppa, self.other, self.both = ppa, other, both
        self.fpr = fingerprint(ppa)

    def signing(self, s: Signer) -> Callable[[Path], None]:
        def sign(checksums: Path) -> None:
            s.gpg("--local-user", s.uid, "--detach-sign", "--output",
                  checksums.with_name("CHECKSUMS.gpg"), checksums)
        return sign


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    where = tmp_path_factory.mktemp("gpg")
    with signer(where, "ppa") as ppa, signer(where, "other") as other:
        both = where / "both.gpg"
        both.write_bytes(ppa.keyring.read_bytes() + other.keyring.read_bytes())
        yield Keys(ppa, other, both)


@pytest.fixture(scope="module")
def shared_url(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[str]:
    """One archive for the tests that only read it (a server costs 0.5 s to stop)."""
    root = mainline_archive(tmp_path_factory.mktemp("mainline"), FOLDERS, CONFIG,
                            sign=keys.signing(keys.ppa))
    with serve(root) as u:
        yield u


@pytest.fixture
def own(tmp_path: Path, keys: Keys) -> Iterator[tuple[Path, str]]:
    """An archive of the test's own, to change under the fetcher: (root, url)."""
    root = mainline_archive(tmp_path / "mainline", FOLDERS, CONFIG,
                            sign=keys.signing(keys.ppa))
    with serve(root) as u:
        yield root, u


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch, keys: Keys, shared_url: str, tmp_cache: Path
           ) -> None:
    """The environment a user sets up: the archive, a keyring, the key to pin."""
    monkeypatch.setenv("BISECTOR_UBUNTU_MAINLINE_URL", shared_url)
    monkeypatch.setenv("BISECTOR_UBUNTU_KEYRING", str(keys.both))
    monkeypatch.setenv("BISECTOR_UBUNTU_KEY_FINGERPRINT", keys.fpr)


@pytest.fixture
def root(pinned: None, own: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Like ``pinned``, on the test's own archive, whose root is returned."""
    monkeypatch.setenv("BISECTOR_UBUNTU_MAINLINE_URL", own[1])
    return own[0]


def specs(entries: list[KernelEntry]) -> list[str]:
    return [e.spec.removeprefix("ubuntu-mainline:") for e in entries]


# ------------------------------------------------------------------ CHECKSUMS.gpg

def test_signature_by_the_pinned_key_is_verified(pinned: None, keys: Keys) -> None:
    art = UbuntuMainlineSource().resolve("v5.10.2")
    assert art.meta["checksums_signature"] == f"verified: signed by {keys.fpr}"


def test_tampered_checksums_are_refused(root: Path, tmp_cache: Path) -> None:
    sums = root / "v5.10.2" / "amd64" / "CHECKSUMS"
    sums.write_text(sums.read_text() + "# the .debs still match: only the signature can tell\n")
    with pytest.raises(SignatureRefused, match="signature mismatch"):
        UbuntuMainlineSource().resolve("v5.10.2")
    assert not list((tmp_cache / "downloads").glob("*.deb"))


def test_signature_by_another_key_is_refused_although_the_keyring_has_it(
        root: Path, keys: Keys) -> None:
    keys.signing(keys.other)(root / "v5.10.2" / "amd64" / "CHECKSUMS")
    with pytest.raises(SignatureRefused, match=f"not by the pinned key {keys.fpr}"):
        UbuntuMainlineSource().resolve("v5.10.2")


def test_shipped_keyring_is_used_by_default(monkeypatch: pytest.MonkeyPatch, keys: Keys,
                                            own: tuple[Path, str], tmp_cache: Path) -> None:
    root, url = own
    monkeypatch.setattr(mainline, "packaged_keyring", lambda: keys.ppa.keyring)
    monkeypatch.setenv("BISECTOR_UBUNTU_KEY_FINGERPRINT", keys.fpr)
    sums = root / "v5.10.2" / "amd64" / "CHECKSUMS"
    sums.write_text(sums.read_text() + "# tampered\n")
    with pytest.raises(SignatureRefused):
        UbuntuMainlineSource(base_url=url).resolve("v5.10.2")


def test_without_a_keyring_the_artifact_says_not_checked(
        monkeypatch: pytest.MonkeyPatch, shared_url: str, tmp_cache: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(mainline, "packaged_keyring", lambda: None)
    with caplog.at_level(logging.WARNING):
        art = UbuntuMainlineSource(base_url=shared_url).resolve("v5.10.2")
    assert art.meta["checksums_signature"].startswith("not checked: no keyring")
    assert "BISECTOR_UBUNTU_KEYRING" in caplog.text


def test_keyring_setting_that_names_no_file_is_a_user_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BISECTOR_UBUNTU_KEYRING", str(tmp_path / "missing.gpg"))
    with pytest.raises(UserError, match="no such keyring"):
        UbuntuMainlineSource(base_url="http://127.0.0.1:9/")


def test_malformed_pinned_fingerprint_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISECTOR_UBUNTU_KEY_FINGERPRINT", "17C622B0")  # a key id, not enough
    with pytest.raises(UserError, match="40 hex digits"):
        UbuntuMainlineSource(base_url="http://127.0.0.1:9/")


# ------------------------------------------------------------------ build status

def test_build_whose_self_tests_failed_is_usable(pinned: None) -> None:
    # amd64/status is 1 there: the packages are the build's all the same
    art = UbuntuMainlineSource().resolve("v5.10.10")
    assert art.release == "5.10.10-051010-generic"


def test_listing_hides_failed_builds(pinned: None) -> None:
    assert specs(UbuntuMainlineSource().builds()) == [
        "v5.4", "v5.10", "v5.10.2", "v5.10.10", "v5.11-rc1"]


def test_listing_all_marks_failed_builds(pinned: None) -> None:
    notes = {e.spec: e.note for e in UbuntuMainlineSource().builds(all_builds=True)}
    assert notes["ubuntu-mainline:v5.10.5"] == "failed: the amd64 build failed"
    assert notes["ubuntu-mainline:v5.10.10"] == "generic amd64, self-tests failed"


def test_listing_no_rc_leaves_rcs_out(pinned: None) -> None:
    assert "v5.11-rc1" not in specs(UbuntuMainlineSource().builds(rc=False))


def test_latest_is_the_newest_usable_release(pinned: None) -> None:
    # v5.11 failed and v5.11-rc1 is an rc: as in the mainline tools, latest is a release
    assert specs(UbuntuMainlineSource().builds("latest")) == ["v5.10.10"]


def test_latest_with_rc_may_be_an_rc(pinned: None) -> None:
    assert specs(UbuntuMainlineSource().builds("latest", rc=True)) == ["v5.11-rc1"]


def test_series_selector_is_the_newest_usable_of_the_series(pinned: None) -> None:
    # v5.10.10 sorts after v5.10.2 (Apache lists it before), v5.10.5 failed
    src = UbuntuMainlineSource()
    assert specs(src.builds("v5.10")) == specs(src.builds("v5.10.y")) == ["v5.10.10"]


def test_exact_version_is_listed_whatever_its_status(pinned: None) -> None:
    [entry] = UbuntuMainlineSource().builds("v5.10.5")
    assert entry.note == "failed: the amd64 build failed"


def test_selectors_work_as_kernel_specs(pinned: None) -> None:
    src = UbuntuMainlineSource()
    latest = src.resolve("latest")
    assert (latest.spec, latest.meta["selector"]) == ("ubuntu-mainline:v5.10.10", "latest")
    assert src.resolve("5.4.y").spec == "ubuntu-mainline:v5.4"


def test_flavour_comes_from_the_environment(pinned: None, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("BISECTOR_UBUNTU_FLAVOUR", "lowlatency")
    assert UbuntuMainlineSource().resolve("v5.4").release == "5.4.0-050400-lowlatency"


def test_flavour_not_built_is_unavailable_naming_what_is(pinned: None) -> None:
    with pytest.raises(KernelUnavailable, match=r"no complete amd64 lowlatency build .*"
                                                r"flavours there: generic\)"):
        UbuntuMainlineSource(flavour="lowlatency").resolve("v5.10")


def test_arch_comes_from_the_environment(pinned: None, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setenv("BISECTOR_UBUNTU_ARCH", "arm64")
    [entry] = UbuntuMainlineSource().builds("v5.11.y")  # amd64 failed there, arm64 built
    assert (entry.spec, entry.note) == ("ubuntu-mainline:v5.11", "generic arm64")


def test_stable_rc_folders_are_not_versions(root: Path) -> None:
    # vX.Y.Z-rcN would sort differently here and in kernel.base.version_key
    index = root / "index.html"
    index.write_text(index.read_text().replace(
        "</table>", '<tr><td><a href="v5.10.1-rc1/">v5.10.1-rc1/</a></td></tr></table>'))
    assert "v5.10.1-rc1" not in UbuntuMainlineSource().versions()


# ------------------------------------------------------------------ the folder cache

def _now_failed(root: Path, version: str) -> None:
    page = root / version / "index.html"
    page.write_text(page.read_text().replace("Test amd64/build succeeded",
                                             "Test amd64/build failed"))


def test_listing_reuses_cached_folders(root: Path) -> None:
    src = UbuntuMainlineSource()
    src.builds()
    _now_failed(root, "v5.10.2")
    assert "v5.10.2" in specs(src.builds())


def test_listing_rereads_a_folder_whose_index_date_changed(root: Path) -> None:
    src = UbuntuMainlineSource()
    src.builds()
    _now_failed(root, "v5.10.2")
    index = root / "index.html"
    index.write_text(index.read_text().replace("2020-12-21 01:02", "2021-03-01 09:09"))
    assert "v5.10.2" not in specs(src.builds())


def test_listing_rereads_folders_after_the_ttl(root: Path, tmp_cache: Path) -> None:
    src = UbuntuMainlineSource()
    src.builds()
    _now_failed(root, "v5.10.2")
    old = time.time() - mainline.DATED_TTL - 60
    for f in (tmp_cache / "ubuntu-mainline-index").rglob("*.json"):
        os.utime(f, (old, old))
    assert "v5.10.2" not in specs(src.builds())


# ------------------------------------------------------------------ bisector kernels list

def test_cli_list_hides_failed_builds(pinned: None, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    assert main(["kernels", "list", "ubuntu-mainline"]) == 0
    assert "ubuntu-mainline:v5.10.5 " not in capsys.readouterr().out


def test_cli_list_all_shows_failed(pinned: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kernels", "list", "ubuntu-mainline", "--all"]) == 0
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "v5.10.5 " in ln]
    assert line.split()[-5:] == ["failed:", "the", "amd64", "build", "failed"]


def test_cli_list_selector_flavour_arch_rc(pinned: None, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    assert main(["kernels", "list", "ubuntu-mainline", "v5.11", "--arch", "arm64",
                 "--flavour", "generic-64k", "--no-rc"]) == 0
    assert capsys.readouterr().out.split() == [
        "ubuntu-mainline:v5.11", "5.11.0-051100.202001010000", "generic-64k", "arm64"]


def test_cli_mainline_options_are_refused_for_other_sources(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kernels", "list", "debian", "--all"]) == 2
    assert "--all only apply to ubuntu-mainline" in capsys.readouterr().err
