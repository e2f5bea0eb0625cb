"""``git:<rev>``: kernels built from a git tree.

* The user's checkout is never touched: each tree gets a dedicated worktree
  (``git worktree add --detach``) under the cache, and ``git checkout`` there
  only rewrites the files that differ, so kbuild's mtime-based incremental
  build recompiles just what changed between two bisection steps.
* Out-of-tree build directory (``O=``), ccache, ``-j$(nproc)``.
* Config = ``tinyconfig`` + ``kvm_guest.config`` + ``kernels/base.config`` +
  the reproducer's required options + user fragments, finalised by
  ``olddefconfig`` in a scratch directory; every requested option is then
  checked (a missing one is a clear :class:`UserError` naming it, because no
  commit could test the reproducer).  The scratch config is copied into the
  build directory only when its content changed, so kbuild does not rebuild.
* Artifact cache keyed by (tree hash of the commit, final config hash,
  compiler version): a kernel built once is never built again.
* A build failure is :class:`BuildFailure` (the commit is SKIP), with the
  build log kept next to the artifact key.

Along the data flow: :mod:`~bisector.kernel.gittree` resolves revisions and
checks them out, :mod:`~bisector.kernel.kconfig` makes the config,
:mod:`~bisector.kernel.kbuild` runs the build; this module keys and caches the
artifacts and drives the three.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..git import git
from ..paths import cache_dir, locked
from .base import KernelArtifact, KernelEntry
from .gittree import GitTree, split_patches
from .kbuild import ARCH, TOOLS, BuildFailure, ImageBuilder, Toolchain
from .kconfig import KernelConfig, read_fragment, wanted_options

__all__ = [
    "ARCH", "TOOLS", "BuildFailure", "BuildStats", "GitBuildSource", "read_fragment",
    "split_patches", "tree_id", "wanted_options",
]

log = logging.getLogger(__name__)


@dataclass
class BuildStats:
    """What the last :meth:`GitBuildSource.resolve` did (for progress and benchmarks)."""

    rev: str = ""
    commit: str = ""
    cached: bool = False
    checkout_s: float = 0.0
    config_s: float = 0.0
    build_s: float = 0.0


def tree_id(tree: Path) -> str:
    return hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:12]


@dataclass
class GitBuildSource:
    """``git:<rev>`` of ``tree``: checked out by :attr:`repo` (a :class:`GitTree`),
    configured by :attr:`kconfig` (a :class:`KernelConfig`), built by :attr:`builder`
    (an :class:`ImageBuilder`) unless the artifact cache has it."""

    tree: Path
    #: reproducer's required options (CONFIG_X; built in, =y)
    required: Sequence[str] = ()
    fragments: Sequence[Path] = ()
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)
    use_ccache: bool = True
    #: called with a line of progress ("building 1a2b3c4 …")
    say: Callable[[str], None] | None = None
    last: BuildStats = field(default_factory=BuildStats)

    prefix = "git"

    def __post_init__(self) -> None:
        self.tree = Path(self.tree).resolve()
        if not (self.tree / ".git").exists():
            raise UserError(f"--tree {self.tree}: not a git checkout")
        base = cache_dir() / "git" / tree_id(self.tree)
        self.worktree = base / "worktree"
        self.build_dir = base / "build"
        self.config_dir = base / "config"
        self.toolchain = Toolchain()
        self.repo = GitTree(self.tree, self.worktree, scratch=base)
        self.kconfig = KernelConfig(self.tree, self.worktree, self.config_dir,
                                    required=self.required, fragments=self.fragments,
                                    toolchain=self.toolchain)
        self.builder = ImageBuilder(self.tree, self.worktree, self.build_dir, jobs=self.jobs,
                                    use_ccache=self.use_ccache, say=self.say)

    # ------------------------------------------------------------ the parts' entry points
    def ensure_worktree(self) -> Path:
        return self.repo.ensure_worktree()

    def rev_parse(self, rev: str) -> str:
        """A commit id for ``rev``; ``REV+PATCH[+PATCH…]`` commits the patches on top."""
        return self.repo.rev_parse(rev)

    def commit_patch(self, base: str, patch: Path) -> str:
        """Commit ``patch`` on top of ``base`` with plumbing only (see :class:`GitTree`)."""
        return self.repo.commit_patch(base, patch)

    def checkout(self, commit: str) -> None:
        self.repo.checkout(commit)

    def fragment_lines(self) -> list[str]:
        return self.kconfig.fragment_lines()

    def kconfig_key(self, commit: str) -> str:
        return self.kconfig.key(commit)

    def make_config(self, commit: str) -> Path:
        """The final .config for ``commit``, verified (cached by its Kconfig inputs)."""
        return self.kconfig.make(commit)

    def compiler(self) -> str:
        return self.toolchain.compiler()

    # ------------------------------------------------------------ artifacts
    def artifact_key(self, commit: str, config: Path) -> str:
        tree_hash = git(self.tree, "rev-parse", f"{commit}^{{tree}}").stdout.strip()
        cfg = hashlib.sha256(config.read_bytes()).hexdigest()
        return hashlib.sha256(f"{tree_hash}|{cfg}|{self.compiler()}".encode()).hexdigest()[:24]

    def built_image(self, commit: str) -> Path | None:
        """The cached bzImage of ``commit`` with this source's config, if it was built
        (nothing is configured or built here: an unbuilt commit gives None)."""
        config = self.kconfig.cache_file(commit)
        if not config.exists():
            return None
        image = cache_dir() / "kernels" / "git" / self.artifact_key(commit, config) / "bzImage"
        return image if image.exists() else None

    def resolve(self, ref: str) -> KernelArtifact:
        commit = self.rev_parse(ref)
        stats = BuildStats(rev=ref, commit=commit)
        self.last = stats
        with locked(self.build_dir):
            t0 = time.monotonic()
            self.checkout(commit)
            stats.checkout_s = time.monotonic() - t0
            t0 = time.monotonic()
            config = self.make_config(commit)
            stats.config_s = time.monotonic() - t0
            key = self.artifact_key(commit, config)
            root = cache_dir() / "kernels" / "git" / key
            art = KernelArtifact.load(root)
            if art is not None:
                stats.cached = True
                art.spec = f"git:{ref}"
                return art
            failed = root / "build-failed.json"
            if failed.exists():
                # same tree, config and compiler: it would fail the same way again
                stats.cached = True
                info = json.loads(failed.read_text())
                raise BuildFailure(f"{info['message']} (cached failure)", root / "build.log")
            t0 = time.monotonic()
            try:
                art = self.builder.build(ref, commit, config, root)
            finally:
                stats.build_s = time.monotonic() - t0
            return art

    def available(self) -> list[KernelEntry]:
        out = git(self.tree, "tag", "--list", "v*", "--sort=v:refname").stdout.split()
        return [KernelEntry(f"git:{t}", t) for t in out]
