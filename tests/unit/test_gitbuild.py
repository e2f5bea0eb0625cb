"""The git build source on a fake kbuild tree (real git, real make, fake compiler)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bisector.errors import UserError
from bisector.kernel.gitbuild import BuildFailure, GitBuildSource
from tests.fakes.gitrepo import git, linear_repo


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    linear_repo(tmp_path / "linux", 3, kbuild=True)
    return tmp_path / "linux"


def count(src: GitBuildSource) -> int:
    f = src.build_dir / "build-count"
    return len(f.read_text().split()) if f.exists() else 0


def test_build_config_and_cache(tree: Path, tmp_cache: Path, tmp_path: Path) -> None:
    frag = tmp_path / "extra.config"
    frag.write_text("# a user fragment\nCONFIG_NET_SCH_NETEM=y\n# CONFIG_IPV6 is not set\n")
    src = GitBuildSource(tree, required=["CONFIG_VETH"], fragments=[frag], use_ccache=False)
    art = src.resolve("v0")
    cfg = art.config.read_text() if art.config else ""
    assert "CONFIG_VETH=y" in cfg and "CONFIG_NET_SCH_NETEM=y" in cfg
    assert "# CONFIG_IPV6 is not set" in cfg and "CONFIG_VIRTIO_BLK=y" in cfg
    assert art.release == "6.1.0-fake" and art.modules is None
    assert art.meta["subject"] == "root" and not src.last.cached
    assert count(src) == 1
    again = src.resolve("v0")  # same tree, same config, same compiler: never rebuilt
    assert again.image == art.image and src.last.cached and count(src) == 1
    other = src.resolve("main")
    assert other.image != art.image and count(src) == 2


def test_users_checkout_is_never_touched(tree: Path, tmp_cache: Path) -> None:
    head = git(tree, "rev-parse", "HEAD")
    (tree / "file1.c").write_text("int local_edit;\n")  # uncommitted work stays as it is
    src = GitBuildSource(tree, use_ccache=False)
    src.resolve("v0")
    assert git(tree, "rev-parse", "HEAD") == head
    assert (tree / "file1.c").read_text() == "int local_edit;\n"
    assert src.worktree != tree and (src.worktree / ".git").exists()


def test_config_unchanged_between_commits_keeps_build_incremental(tree: Path,
                                                                  tmp_cache: Path) -> None:
    src = GitBuildSource(tree, use_ccache=False)
    src.resolve("v0")
    before = (src.build_dir / ".config").stat().st_mtime_ns
    src.resolve("main")
    assert (src.build_dir / ".config").stat().st_mtime_ns == before


def test_missing_option_is_named(tree: Path, tmp_cache: Path) -> None:
    (tree / "unsupported").write_text("CONFIG_NET_IPGRE\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "drop ipgre")
    src = GitBuildSource(tree, required=["CONFIG_NET_IPGRE"], use_ccache=False)
    with pytest.raises(UserError, match=r"not set after olddefconfig.*CONFIG_NET_IPGRE=y"):
        src.resolve("main")


def test_build_failure_is_skip_material_with_log(tree: Path, tmp_cache: Path) -> None:
    (tree / "file2.c").write_text("#error broken\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "broken build")
    src = GitBuildSource(tree, use_ccache=False)
    with pytest.raises(BuildFailure, match=r"does not build.*error") as ei:
        src.resolve("main")
    assert "broken on purpose" in ei.value.log_path.read_text()


def test_bad_inputs(tree: Path, tmp_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a git checkout"):
        GitBuildSource(tmp_path)
    src = GitBuildSource(tree, use_ccache=False)
    with pytest.raises(UserError, match="no such commit"):
        src.resolve("v999")
    bad = tmp_path / "bad.config"
    bad.write_text("VETH=y\n")
    with pytest.raises(UserError, match=r"bad\.config:1: not a config line"):
        GitBuildSource(tree, fragments=[bad]).resolve("v0")
