"""Small real git repositories for engine and build-source tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from bisector import proc

FAKELINUX = Path(__file__).resolve().parent / "fakelinux"
ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.invalid",
       "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.invalid",
       "GIT_AUTHOR_DATE": "2026-01-01T00:00:00", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00"}


def git(repo: Path, *args: str) -> str:
    return proc.run(["git", "-C", repo, *args], env=ENV).stdout.strip()


def linear_repo(path: Path, n: int, *, kbuild: bool = False,
                tags: dict[int, str] | None = None) -> list[str]:
    """``n`` commits after a root commit tagged v0; returns [root, c1..cn] shas."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    if kbuild:
        shutil.copytree(FAKELINUX, path, dirs_exist_ok=True)
    (path / "file0.c").write_text("int v0;\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "root")
    git(path, "tag", "v0")
    shas = [git(path, "rev-parse", "HEAD")]
    for i in range(1, n + 1):
        (path / f"file{i % 5}.c").write_text(f"int v{i};\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"change {i}")
        shas.append(git(path, "rev-parse", "HEAD"))
        if tags and i in tags:
            git(path, "tag", tags[i])
    return shas


class History:
    """A commit graph to build as a real repository: any parents, merges, tags, branches.

    Commits are made with ``git commit-tree`` on one empty tree (no worktree,
    one git call each), because the search engines and ``git bisect
    --no-checkout`` only look at the graph; this keeps a 40-commit history
    with merges well under a second.  Committer dates increase in creation
    order, as in a real history, so git's date-ordered walks see what they
    would see there.  Names are what tests talk about; :meth:`build` maps
    them to shas.
    """

    def __init__(self) -> None:
        self.parents: dict[str, tuple[str, ...]] = {}
        self.refs: dict[str, str] = {}  # full ref name -> commit name

    def commit(self, name: str, *parents: str) -> str:
        """One commit on ``parents`` (none: a root; several: a merge, or an octopus)."""
        if name in self.parents:
            raise ValueError(f"commit {name!r} defined twice")
        missing = [p for p in parents if p not in self.parents]
        if missing:
            raise ValueError(f"{name}: unknown parents {missing}")
        self.parents[name] = parents
        return name

    def chain(self, prefix: str, n: int, parent: str | None) -> list[str]:
        """``prefix1`` … ``prefixN``, each on the previous one, the first on ``parent``."""
        names: list[str] = []
        for i in range(1, n + 1):
            base = names[-1] if names else parent
            names.append(self.commit(f"{prefix}{i}", *([base] if base else [])))
        return names

    def tag(self, tag: str, name: str) -> None:
        self.refs[f"refs/tags/{tag}"] = name

    def branch(self, branch: str, name: str) -> None:
        self.refs[f"refs/heads/{branch}"] = name

    def is_ancestor(self, a: str, b: str) -> bool:
        """``a`` is ``b`` or an ancestor of it (what ``merge-base --is-ancestor`` answers)."""
        seen: set[str] = set()
        todo = [b]
        while todo:
            c = todo.pop()
            if c == a:
                return True
            if c not in seen:
                seen.add(c)
                todo.extend(self.parents[c])
        return False

    def build(self, path: Path, salt: str = "") -> dict[str, str]:
        """Create the repository at ``path``; name -> sha.  ``main`` is the last commit
        unless a ``main`` branch was given; ``salt`` (added to every message) gives
        the same graph other commit ids."""
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        tree = git(path, "write-tree")  # the empty index: the empty tree
        shas: dict[str, str] = {}
        for i, (name, parents) in enumerate(self.parents.items()):
            env = dict(ENV, GIT_AUTHOR_DATE=f"@{1767225600 + 60 * i} +0000",
                       GIT_COMMITTER_DATE=f"@{1767225600 + 60 * i} +0000")
            argv: list[str | Path] = ["git", "-C", path, "commit-tree", tree, "-m", name + salt]
            for p in parents:
                argv += ["-p", shas[p]]
            shas[name] = proc.run(argv, env=env).stdout.strip()
        refs = {"refs/heads/main": list(self.parents)[-1], **self.refs}
        for ref, name in refs.items():
            git(path, "update-ref", ref, shas[name])
        return shas


def empty_repo(path: Path) -> Path:
    """A new repository with no commit on ``main`` (for :func:`commit_files`)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit_files(repo: Path, message: str, files: dict[str, str | None],
                 parents: list[str] | None = None,
                 ref: str | None = "refs/heads/main") -> str:
    """Commit ``files`` (path -> text; None deletes) on the first parent's tree; the sha.

    Plumbing on a private index, so tests can give a commit real content and
    any parents (a merge) without a checkout; ``parents`` defaults to ``ref``'s
    commit (none on an empty repository), and ``ref`` is moved to the commit.
    The working tree is not updated (``git checkout -f`` when a test needs it).
    """
    if parents is None:
        head = proc.run(["git", "-C", repo, "rev-parse", "--verify", "-q", ref or "HEAD"],
                        check=False).stdout.strip()
        parents = [head] if head else []
    index = repo / ".git" / "commit_files.index"
    env = dict(ENV, GIT_INDEX_FILE=str(index))
    try:
        proc.run(["git", "-C", repo, "read-tree", *(parents[:1] or ["--empty"])], env=env)
        for path, text in files.items():
            if text is None:
                proc.run(["git", "-C", repo, "update-index", "--force-remove", path], env=env)
                continue
            blob = proc.run(["git", "-C", repo, "hash-object", "-w", "--stdin"],
                            input=text).stdout.strip()
            proc.run(["git", "-C", repo, "update-index", "--add", "--cacheinfo",
                      f"100644,{blob},{path}"], env=env)
        tree = proc.run(["git", "-C", repo, "write-tree"], env=env).stdout.strip()
    finally:
        index.unlink(missing_ok=True)
    argv: list[str | Path] = ["git", "-C", repo, "commit-tree", tree, "-m", message]
    for p in parents:
        argv += ["-p", p]
    sha = proc.run(argv, env=ENV).stdout.strip()
    if ref:
        git(repo, "update-ref", ref, sha)
    return sha
