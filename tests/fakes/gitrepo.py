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
