"""The final ``.config`` of a git build, and the proof that it has what was asked.

Config = ``tinyconfig`` + ``kvm_guest.config`` + ``kernels/base.config`` + the
reproducer's required options + user fragments, finalised by ``olddefconfig``
in a scratch directory.  Every requested option is then checked: one that
olddefconfig dropped is a :class:`UserError` naming it, since no commit could
test the reproducer.  Results are cached by everything olddefconfig reads, so
a bisection runs kconfig once, not once per step.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from .. import proc, resources
from ..errors import UserError
from ..git import git
from ..paths import cache_dir
from .kbuild import ARCH, BuildFailure, Toolchain


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


class KernelConfig:
    """Configs of ``tree``'s commits, made in ``worktree`` (which must hold the commit)
    with ``scratch`` as kconfig's ``O=``, from ``required`` (CONFIG_X, built in) and
    the ``fragments`` files; ``toolchain`` is part of the key."""

    def __init__(self, tree: Path, worktree: Path, scratch: Path, *,
                 required: Sequence[str], fragments: Sequence[Path],
                 toolchain: Toolchain) -> None:
        self.tree = tree
        self.worktree = worktree
        self.scratch = scratch
        self.required = required
        self.fragments = fragments
        self.toolchain = toolchain

    def fragment_lines(self) -> list[str]:
        lines = read_fragment(resources.kernel_config("base.config"))
        lines += [f"{opt}=y" for opt in self.required]
        for frag in self.fragments:
            lines += read_fragment(Path(frag))
        return lines

    def key(self, commit: str) -> str:
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
        h.update(self.toolchain.compiler().encode())
        return h.hexdigest()[:24]

    def cache_file(self, commit: str) -> Path:
        """Where the final config of ``commit`` is kept (whether made yet or not)."""
        return cache_dir() / "git-configs" / f"{self.key(commit)}.config"

    def make(self, commit: str) -> Path:
        """The final .config for ``commit``, verified (cached by its Kconfig inputs)."""
        cached = self.cache_file(commit)
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
        cfg_dir = self.scratch
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
