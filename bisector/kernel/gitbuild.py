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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import proc, resources
from ..errors import InfraError, Untestable, UserError
from ..git import git
from ..paths import cache_dir, locked, require_free
from .base import KernelArtifact, KernelEntry
from .local import _bzimage_release

log = logging.getLogger(__name__)

ARCH = "x86_64"
TOOLS = ("make", "gcc", "flex", "bison", "bc")


class BuildFailure(Untestable):
    """This commit does not build with this config: SKIP it (log kept)."""

    def __init__(self, message: str, log_path: Path) -> None:
        super().__init__(message, log_path)


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


def read_fragment(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"config fragment {path}: {exc.strerror}") from exc
    lines = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or (s.startswith("#") and "is not set" not in s):
            continue
        if not re.match(r"^(CONFIG_[A-Za-z0-9_]+=.*|# CONFIG_[A-Za-z0-9_]+ is not set)$", s):
            raise UserError(f"config fragment {path}:{n}: not a config line: {s[:80]!r}")
        lines.append(s)
    return lines


def wanted_options(lines: Sequence[str]) -> dict[str, str]:
    """``CONFIG_X → value`` for every option a fragment sets (``n`` for 'is not set')."""
    out = {}
    for s in lines:
        m = re.match(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$", s)
        if m:
            out[m.group(1)] = m.group(2)
        else:
            m2 = re.match(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$", s)
            if m2:
                out[m2.group(1)] = "n"
    return out


@dataclass
class GitBuildSource:
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
        self._compiler = ""

    # ------------------------------------------------------------ worktree
    def ensure_worktree(self) -> Path:
        if (self.worktree / ".git").exists():
            return self.worktree
        self.worktree.parent.mkdir(parents=True, exist_ok=True)
        git(self.tree, "worktree", "prune")
        git(self.tree, "worktree", "add", "--detach", self.worktree, "HEAD")
        return self.worktree

    def rev_parse(self, rev: str) -> str:
        """A commit id for ``rev``; ``REV+PATCH[+PATCH…]`` commits the patches on top."""
        base, patches = split_patches(rev)
        r = git(self.tree, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False)
        if r.returncode != 0:
            raise UserError(f"git:{rev}: no such commit in {self.tree}")
        sha = r.stdout.strip()
        for patch in patches:
            sha = self.commit_patch(sha, patch)
        return sha

    def commit_patch(self, base: str, patch: Path) -> str:
        """Commit ``patch`` on top of ``base`` with plumbing only (no checkout is touched).

        The commit is kept under ``refs/bisector/patched/`` so git gc keeps it and
        the same patch on the same base gives the same commit id (fixed dates).
        """
        if not patch.is_file():
            raise UserError(f"patch {patch}: no such file")
        index = self.config_dir.parent / "patch.index"
        index.parent.mkdir(parents=True, exist_ok=True)
        env = {"GIT_INDEX_FILE": str(index), "GIT_AUTHOR_NAME": "bisector",
               "GIT_AUTHOR_EMAIL": "bisector@localhost", "GIT_COMMITTER_NAME": "bisector",
               "GIT_COMMITTER_EMAIL": "bisector@localhost",
               "GIT_AUTHOR_DATE": "@0 +0000", "GIT_COMMITTER_DATE": "@0 +0000"}
        try:
            git(self.tree, "read-tree", base, env=env, timeout=300)
            git(self.tree, "apply", "--cached", patch.resolve(), env=env, timeout=300)
            tree = git(self.tree, "write-tree", env=env, timeout=300).stdout.strip()
        except proc.CommandError as exc:
            raise UserError(f"patch {patch} does not apply to {base[:12]}: {exc.tail(1)}") \
                from exc
        finally:
            index.unlink(missing_ok=True)
        msg = f"bisector: apply {patch.name}\n\n{_patch_header(patch)}"
        sha = git(self.tree, "commit-tree", tree, "-p", base, "-m", msg, env=env,
                  timeout=300).stdout.strip()
        git(self.tree, "update-ref", f"refs/bisector/patched/{patch.stem}-{base[:12]}", sha)
        return sha

    def checkout(self, commit: str) -> None:
        wt = self.ensure_worktree()
        git(wt, "checkout", "--quiet", "--detach", "--force", commit)

    # ------------------------------------------------------------ config
    def fragment_lines(self) -> list[str]:
        lines = read_fragment(resources.kernel_config("base.config"))
        lines += [f"{opt}=y" for opt in self.required]
        for frag in self.fragments:
            lines += read_fragment(Path(frag))
        return lines

    def kconfig_key(self, commit: str) -> str:
        """Hash of everything olddefconfig reads: Kconfig files, config fragments, compiler.

        Commits that do not touch any Kconfig input share one final config, so
        kconfig runs once per bisection instead of once per step.
        """
        listing = git(self.tree, "ls-tree", "-r", commit).stdout
        h = hashlib.sha256()
        for line in listing.splitlines():
            meta, _, path = line.partition("\t")
            if ("Kconfig" in path or path.startswith(("arch/x86/configs/", "kernel/configs/",
                                                      "scripts/kconfig/"))):
                h.update(meta.encode() + path.encode() + b"\n")
        h.update("\n".join(self.fragment_lines()).encode())
        h.update(self.compiler().encode())
        return h.hexdigest()[:24]

    def make_config(self, commit: str) -> Path:
        """The final .config for ``commit``, verified (cached by its Kconfig inputs)."""
        cached = cache_dir() / "git-configs" / f"{self.kconfig_key(commit)}.config"
        if cached.exists():
            return cached
        final = self._run_kconfig(commit)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        shutil.copyfile(final, tmp)
        tmp.rename(cached)
        return cached

    def _run_kconfig(self, commit: str) -> Path:
        wt = self.worktree
        cfg_dir = self.config_dir
        cfg_dir.mkdir(parents=True, exist_ok=True)
        logf = cfg_dir / "config.log"
        logf.unlink(missing_ok=True)
        make: list[str | Path] = ["make", "-C", wt, f"O={cfg_dir}", f"ARCH={ARCH}", "-s"]
        try:
            proc.run([*make, "tinyconfig"], timeout=600, log_file=logf)
            proc.run([*make, "kvm_guest.config"], timeout=600, log_file=logf)
            lines = self.fragment_lines()
            with (cfg_dir / ".config").open("a") as fh:
                fh.write("\n# bisector fragments\n" + "\n".join(lines) + "\n")
            proc.run([*make, "olddefconfig"], timeout=600, log_file=logf)
        except proc.CommandError as exc:
            raise BuildFailure(f"git:{commit[:12]}: configuring failed: {exc.tail(1)}",
                               logf) from exc
        final = cfg_dir / ".config"
        have = dict(re.findall(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$", final.read_text(), re.M))
        missing = [f"{opt}={val}" for opt, val in wanted_options(lines).items()
                   if (have.get(opt, "n") != val)]
        if missing:
            raise UserError(f"git:{commit[:12]}: config option(s) not set after olddefconfig "
                            f"(unmet dependencies?): {', '.join(missing[:8])}"
                            + (f" and {len(missing) - 8} more" if len(missing) > 8 else ""))
        return final

    # ------------------------------------------------------------ build
    def compiler(self) -> str:
        if self._compiler:
            return self._compiler
        for tool in TOOLS:
            if shutil.which(tool) is None:
                raise InfraError(f"build tool {tool!r} is missing (run 'make setup')")
        self._compiler = proc.run(["gcc", "--version"], timeout=30).stdout.splitlines()[0]
        return self._compiler

    def artifact_key(self, commit: str, config: Path) -> str:
        tree_hash = git(self.tree, "rev-parse", f"{commit}^{{tree}}").stdout.strip()
        cfg = hashlib.sha256(config.read_bytes()).hexdigest()
        return hashlib.sha256(f"{tree_hash}|{cfg}|{self.compiler()}".encode()).hexdigest()[:24]

    def built_image(self, commit: str) -> Path | None:
        """The cached bzImage of ``commit`` with this source's config, if it was built
        (nothing is configured or built here: an unbuilt commit gives None)."""
        config = cache_dir() / "git-configs" / f"{self.kconfig_key(commit)}.config"
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
                art = self._build(ref, commit, config, root)
            finally:
                stats.build_s = time.monotonic() - t0
            return art

    def _build(self, ref: str, commit: str, config: Path, root: Path) -> KernelArtifact:
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
            if exc.timed_out:
                raise InfraError(f"build of {commit[:12]} timed out (log: {logf})") from exc
            if "No space left on device" in exc.output:
                raise InfraError(f"build of {commit[:12]}: no space left on device "
                                 f"(log: {logf})") from exc
            lines = [ln for ln in exc.output.splitlines() if "error" in ln.lower()]
            first = (lines[0] if lines else exc.tail(1))[:200]
            message = f"git:{commit[:12]} does not build: {first}"
            (root / "build-failed.json").write_text(json.dumps(
                {"commit": commit, "message": message, "returncode": exc.returncode}))
            raise BuildFailure(message, logf) from exc
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

    def available(self) -> list[KernelEntry]:
        out = git(self.tree, "tag", "--list", "v*", "--sort=v:refname").stdout.split()
        return [KernelEntry(f"git:{t}", t) for t in out]


def split_patches(rev: str) -> tuple[str, list[Path]]:
    """``v6.1.192+kernels/patches/x.patch`` → (``v6.1.192``, [x.patch])."""
    parts = rev.split("+")
    base = parts[0]
    patches = []
    for part in parts[1:]:
        if part.endswith((".patch", ".diff")):
            patches.append(Path(part))
        else:
            base += "+" + part
    return base, patches


def _patch_header(patch: Path) -> str:
    """The comment lines before the diff (what the patch says it reverts)."""
    lines = []
    for line in patch.read_text(errors="replace").splitlines():
        if line.startswith(("diff --git", "--- ", "Index: ")):
            break
        lines.append(line)
    return "\n".join(lines).strip() + "\n"
