"""The one step "kernel spec → artifact", and the one "cannot be tested" base."""

from __future__ import annotations

from pathlib import Path

import pytest

from bisector import kernel as kernels
from bisector.errors import InfraError, Untestable, UserError
from bisector.guest import GuestLost
from bisector.kernel import KernelResolver, is_prebuilt
from bisector.kernel.base import KernelArtifact, KernelEntry, KernelUnavailable, version_key
from bisector.kernel.gitbuild import BuildFailure
from bisector.runner import MissingConfig
from bisector.tester import spec_for
from bisector.vm import BootFailure
from tests.fakes.gitrepo import linear_repo


@pytest.mark.parametrize("exc", [BuildFailure, KernelUnavailable, BootFailure, GuestLost,
                                 MissingConfig])
def test_every_cannot_test_error_shares_one_base(exc: type[Exception]) -> None:
    assert issubclass(exc, Untestable)
    assert not issubclass(exc, UserError | InfraError)


def test_git_specs_get_the_reproducers_options_from_the_env_tree(
        tmp_path: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    linear_repo(tmp_path / "linux", 2)
    monkeypatch.setenv("BISECTOR_TREE", str(tmp_path / "linux"))
    src = KernelResolver(required=["CONFIG_VETH"], fragments=[tmp_path / "x.config"]).git_source
    assert src.tree == (tmp_path / "linux").resolve()
    assert list(src.required) == ["CONFIG_VETH"]
    assert list(src.fragments) == [tmp_path / "x.config"]


def test_git_spec_without_a_tree_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BISECTOR_TREE", raising=False)
    with pytest.raises(UserError, match="need a kernel tree"):
        KernelResolver().resolve("git:v6.1")


@pytest.mark.parametrize(("spec", "prebuilt"), [
    ("debian:6.1.0-56", True), ("ubuntu-mainline:v5.7", True), ("local:/x.deb", True),
    ("git:v6.1", False), ("v6.1.192", False), ("0123abcd" * 5, False), ("nosuch:1", False)])
def test_prebuilt_or_commit(spec: str, prebuilt: bool) -> None:
    assert is_prebuilt(spec) is prebuilt


def test_a_commit_candidate_is_built_as_a_git_spec() -> None:
    sha = "0123abcd" * 5
    assert spec_for(sha) == f"git:{sha}" and spec_for("debian:6.1.0-56") == "debian:6.1.0-56"


@pytest.mark.parametrize(("older", "newer"), [
    ("v6.1.187", "v6.1.190"), ("v6.1.190", "v6.2-rc1"), ("v6.2-rc1", "v6.2-rc10"),
    ("v6.2-rc7", "v6.2"), ("v6.2", "v6.2.1"), ("v5.19", "v6.0")])
def test_version_order(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


class Shuffled:
    prefix = "shuffled"

    def resolve(self, ref: str) -> KernelArtifact:  # pragma: no cover - never resolved
        raise NotImplementedError

    def available(self) -> list[KernelEntry]:
        return [KernelEntry("shuffled:a", "1", upstream="v6.1.190"),
                KernelEntry("shuffled:b", "2", upstream="v6.1.187")]


def test_listing_refuses_a_source_that_is_not_oldest_first() -> None:
    kernels.register("shuffled", Shuffled)
    try:
        with pytest.raises(InfraError, match=r"lists shuffled:b \(v6\.1\.187\) after "
                                             r"shuffled:a \(v6\.1\.190\)"):
            kernels.listing("shuffled")
    finally:
        kernels.REGISTRY.pop("shuffled")
