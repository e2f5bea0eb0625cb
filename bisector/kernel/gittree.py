"""The user's kernel tree as a git build uses it, without ever touching their checkout.

Revisions are resolved in the tree itself, and a ``REV+PATCH`` revision is
committed there with plumbing only (a scratch index, no checkout).  Builds
happen in a dedicated worktree under the cache (``git worktree add
--detach``), where ``git checkout`` rewrites only the files that differ, so
kbuild's mtime-based incremental build recompiles just what changed between
two bisection steps.
"""

from __future__ import annotations

from pathlib import Path

from .. import proc
from ..errors import UserError
from ..git import git


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


class GitTree:
    """``tree`` (the user's checkout), its worktree at ``worktree``, and ``scratch``, a
    directory of ours for the temporary index that patched commits are made with."""

    def __init__(self, tree: Path, worktree: Path, scratch: Path) -> None:
        self.tree = tree
        self.worktree = worktree
        self.scratch = scratch

    def ensure_worktree(self) -> Path:
        if (self.worktree / ".git").exists():
            return self.worktree
        self.worktree.parent.mkdir(parents=True, exist_ok=True)
        git(self.tree, "worktree", "prune")
        git(self.tree, "worktree", "add", "--detach", self.worktree, "HEAD")
        return self.worktree

    def checkout(self, commit: str) -> None:
        wt = self.ensure_worktree()
        git(wt, "checkout", "--quiet", "--detach", "--force", commit)

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
        index = self.scratch / "patch.index"
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
