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
    builds = count(src)
    with pytest.raises(BuildFailure, match="cached failure"):
        src.resolve("main")  # deterministic: not attempted again
    assert count(src) == builds and src.last.cached


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


def test_rev_plus_patch(tree: Path, tmp_cache: Path, tmp_path: Path) -> None:
    patch = tmp_path / "revert-fix.patch"
    patch.write_text("# Reverts upstream abc123 (demo)\n"
                     "diff --git a/file0.c b/file0.c\n--- a/file0.c\n+++ b/file0.c\n"
                     "@@ -1 +1 @@\n-int v0;\n+int v0_reverted;\n")
    head = git(tree, "rev-parse", "HEAD")
    src = GitBuildSource(tree, use_ccache=False)
    sha = src.rev_parse(f"v0+{patch}")
    assert sha == src.rev_parse(f"v0+{patch}")  # deterministic: same patch, same commit
    assert git(tree, "show", f"{sha}:file0.c") == "int v0_reverted;"
    assert "Reverts upstream abc123" in git(tree, "log", "-1", "--format=%B", sha)
    art = src.resolve(f"v0+{patch}")
    assert b"int v0_reverted;" in art.image.read_bytes()
    assert git(tree, "rev-parse", "HEAD") == head and git(tree, "status", "--short") == ""
    bad = tmp_path / "bad.patch"
    bad.write_text(patch.read_text().replace("-int v0;", "-int nope;"))
    with pytest.raises(UserError, match="does not apply"):
        src.rev_parse(f"v0+{bad}")
