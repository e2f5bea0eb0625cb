"""Running kbuild for a git build: the toolchain, and ``make bzImage`` out of tree.

The build directory (``O=``) persists between bisection steps, so a step
recompiles only what changed; the final config is copied in only when its
content changed, so kbuild does not rebuild everything for an identical file.
A commit that does not build is a :class:`BuildFailure` (SKIP), remembered
next to its artifact key; a timeout or a full disk is the machine's trouble
(:class:`InfraError`), never the commit's.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .. import proc
from ..errors import InfraError, Untestable
from ..git import git
from ..paths import cache_dir, require_free
from .base import KernelArtifact
from .local import _bzimage_release

ARCH = "x86_64"
TOOLS = ("make", "gcc", "flex", "bison", "bc")


class BuildFailure(Untestable):
    """This commit does not build with this config: SKIP it (log kept)."""

    def __init__(self, message: str, log_path: Path) -> None:
        super().__init__(message, log_path)


class Toolchain:
    """The build tools, checked once, and the compiler's version: part of every cache
    key (a kernel built by another gcc is another kernel)."""

    def __init__(self) -> None:
        self._compiler = ""

    def compiler(self) -> str:
        if self._compiler:
            return self._compiler
        for tool in TOOLS:
            if shutil.which(tool) is None:
                raise InfraError(f"build tool {tool!r} is missing (run 'make setup')")
        self._compiler = proc.run(["gcc", "--version"], timeout=30).stdout.splitlines()[0]
        return self._compiler


class ImageBuilder:
    """Builds a bzImage of ``worktree`` in ``build_dir`` (``-j jobs``, ccache if asked and
    installed), telling ``say`` a line when a build starts; ``tree`` names the commit's
    subject and origin in the artifact."""

    def __init__(self, tree: Path, worktree: Path, build_dir: Path, *, jobs: int,
                 use_ccache: bool, say: Callable[[str], None] | None) -> None:
        self.tree = tree
        self.worktree = worktree
        self.build_dir = build_dir
        self.jobs = jobs
        self.use_ccache = use_ccache
        self.say = say

    def build(self, ref: str, commit: str, config: Path, root: Path) -> KernelArtifact:
        """Build the checked-out ``commit`` with ``config`` into the artifact at ``root``."""
        root.mkdir(parents=True, exist_ok=True)
        logf = root / "build.log"
        logf.unlink(missing_ok=True)
        self.build_dir.mkdir(parents=True, exist_ok=True)
        dest_cfg = self.build_dir / ".config"
        if not dest_cfg.exists() or dest_cfg.read_bytes() != config.read_bytes():
            shutil.copyfile(config, dest_cfg)
        argv: list[str | Path] = ["make", "-C", self.worktree, f"O={self.build_dir}",
                                  f"ARCH={ARCH}", f"-j{self.jobs}", "bzImage"]
        # fixed build identity (#1, timestamp, user, host): the same code gives the same
        # bzImage, so culprit verification can tell a no-op change by its kernel
        env = {"KBUILD_BUILD_TIMESTAMP": "bisector", "KBUILD_BUILD_USER": "bisector",
               "KBUILD_BUILD_HOST": "bisector", "KBUILD_BUILD_VERSION": "1",
               "LOCALVERSION": ""}
        if self.use_ccache and shutil.which("ccache"):
            argv.append("CC=ccache gcc")
            env["CCACHE_DIR"] = os.environ.get("CCACHE_DIR", str(cache_dir() / "ccache"))
            env["CCACHE_BASEDIR"] = str(self.worktree)
            env["CCACHE_MAXSIZE"] = os.environ.get("CCACHE_MAXSIZE", "10G")
        # a minimal-config build tree holds ~0.5 GiB of objects; a full disk mid-build
        # would read as "does not build" (a SKIP) instead of the machine's trouble
        require_free(self.build_dir, 1 << 30, f"building {commit[:12]}")
        if self.say:
            self.say(f"building {commit[:12]} (-j{self.jobs}; log {logf})")
        (root / "build.cmd").write_text(proc.quote(argv) + "\n")
        try:
            proc.run(argv, env=env, timeout=4 * 3600, log_file=logf)
        except proc.CommandError as exc:
            raise self._failure(commit, exc, root, logf) from exc
        return self._artifact(ref, commit, config, root)

    @staticmethod
    def _failure(commit: str, exc: proc.CommandError, root: Path, logf: Path) -> Exception:
        """What a failed ``make`` means: the machine's trouble, or the commit's (then
        remembered in ``build-failed.json``, so it is not built again)."""
        if exc.timed_out:
            return InfraError(f"build of {commit[:12]} timed out (log: {logf})")
        if "No space left on device" in exc.output:
            return InfraError(f"build of {commit[:12]}: no space left on device "
                              f"(log: {logf})")
        lines = [ln for ln in exc.output.splitlines() if "error" in ln.lower()]
        first = (lines[0] if lines else exc.tail(1))[:200]
        message = f"git:{commit[:12]} does not build: {first}"
        (root / "build-failed.json").write_text(json.dumps(
            {"commit": commit, "message": message, "returncode": exc.returncode}))
        return BuildFailure(message, logf)

    def _artifact(self, ref: str, commit: str, config: Path, root: Path) -> KernelArtifact:
        """The built image and its config, saved as the artifact at ``root``."""
        image = root / "bzImage"
        shutil.copyfile(self.build_dir / "arch" / "x86" / "boot" / "bzImage", image)
        shutil.copyfile(config, root / "config")
        subject = git(self.tree, "log", "-1", "--format=%s", commit).stdout.strip()
        art = KernelArtifact(spec=f"git:{ref}", release=_bzimage_release(image), image=image,
                             modules=None, config=root / "config", root=root,
                             meta={"commit": commit, "subject": subject,
                                   "tree": str(self.tree), "distro": "git"})
        (root / "build.json").write_text(json.dumps({"commit": commit, "built":
                                                     time.strftime("%Y-%m-%dT%H:%M:%S")}))
        art.save()
        return art
