"""The one git wrapper: every git command bisector runs goes through :func:`git`.

It is a thin layer on the subprocess gate (:func:`bisector.proc.run`): argv
only, ``-C`` the repository, a timeout, the caller's extra environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import proc
from .outcomes import CommitInfo


def git(repo: Path, *args: str | Path, check: bool = True, timeout: float = 600,
        env: Mapping[str, str] | None = None) -> proc.Completed:
    """``git -C repo ARGS``; raises :class:`~bisector.errors.CommandError` when ``check``."""
    return proc.run(["git", "-C", repo, *args], timeout=timeout, check=check, env=env)


def git_bytes(repo: Path, *args: str | Path, timeout: float = 600) -> bytes:
    """Stdout as bytes (a patch's encoding is not ours to guess)."""
    return proc.run_bytes(["git", "-C", repo, *args], timeout=timeout).stdout


def out(repo: Path, *args: str | Path, env: Mapping[str, str] | None = None,
        timeout: float = 600) -> str:
    """Stripped stdout of a git command that must succeed."""
    return git(repo, *args, env=env, timeout=timeout).stdout.strip()


def commit_info(repo: Path, sha: str) -> CommitInfo:
    """Full sha, subject, author and date of one commit (what reports cite)."""
    fields = out(repo, "log", "-1", "--format=%H%x00%s%x00%an <%ae>%x00%aI", sha).split("\0")
    return CommitInfo(sha=fields[0], subject=fields[1], author=fields[2], date=fields[3])
