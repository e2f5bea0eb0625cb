"""The one step "kernel spec → kernel artifact", for every command.

``bisector run``, ``repro prove``, ``kernels fetch`` and a campaign's tester
all go through :meth:`KernelResolver.resolve`, so a ``git:`` spec is always
built with the reproducer's required options and the user's fragments, and a
prebuilt spec always goes through its registered source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .base import REGISTRY, KernelArtifact, resolve, split_spec
from .gitbuild import BuildStats, GitBuildSource

GIT_PREFIX = "git"


def is_git(spec: str) -> bool:
    return spec.startswith(f"{GIT_PREFIX}:")


def is_prebuilt(spec: str) -> bool:
    """``debian:…``, ``ubuntu-mainline:…``, ``local:…``: a registered prebuilt source."""
    prefix, sep, _ = spec.partition(":")
    return bool(sep) and prefix in REGISTRY


@dataclass
class KernelResolver:
    """Turns specs into artifacts; holds the git build source when there is a tree.

    ``tree`` defaults to ``$BISECTOR_TREE`` so ``git:`` specs work in scripts
    that do not pass ``--tree``.
    """

    tree: Path | None = None
    #: the reproducer's required config options (forced on for git builds)
    required: Sequence[str] = ()
    fragments: Sequence[Path] = ()
    say: Callable[[str], None] | None = None
    _git: GitBuildSource | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tree is None and os.environ.get("BISECTOR_TREE"):
            self.tree = Path(os.environ["BISECTOR_TREE"])

    @property
    def git_source(self) -> GitBuildSource:
        if self._git is None:
            if self.tree is None:
                raise UserError("git:REV kernels need a kernel tree: pass --tree PATH "
                                "(or set BISECTOR_TREE)")
            self._git = GitBuildSource(self.tree, required=self.required,
                                       fragments=self.fragments, say=self.say)
        return self._git

    def resolve(self, spec: str) -> KernelArtifact:
        """Fetch or build; :class:`~bisector.kernel.gitbuild.BuildFailure` and
        :class:`~bisector.kernel.base.KernelUnavailable` mean "cannot be tested"."""
        if is_git(spec):
            return self.git_source.resolve(spec[len(GIT_PREFIX) + 1:])
        split_spec(spec)  # a clear error for an unknown prefix
        return resolve(spec)

    def build_stats(self, spec: str) -> BuildStats | None:
        """What resolving ``spec`` last cost (git builds only)."""
        if is_git(spec) and self._git is not None:
            return self._git.last
        return None
