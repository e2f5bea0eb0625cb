"""``bisector cache du`` / ``prune``: what the cache holds, and making room safely.

Each mainline kernel leaves ~200 MB (debs, the unpacked tree, the modules
disk), each git build a few MB plus the shared build tree.  Pruning removes
whole kernel artifacts (``kernels/<kind>/<key>/``) and downloaded packages
(``downloads/``), least recently used first, and never:

* anything used since the oldest campaign that is still RUNNING (resumable)
  started: such a campaign may need it again (use marks: ``.last-used`` in an
  artifact, the mtime of a download);
* an artifact another process holds the lock of (it is being built or
  unpacked right now).

The guest images, ccache and git worktrees are reported by ``du`` but left
alone: they are what makes the next boot and build fast.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .kernel.base import LAST_USED
from .paths import cache_dir, disk_usage


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str  # kernels/<source> or downloads
    size: int
    last_used: float


def _last_used(path: Path) -> float:
    mark = path / LAST_USED if path.is_dir() else path
    try:
        return mark.stat().st_mtime
    except OSError:
        return path.stat().st_mtime


def prunable(sizes: bool = True) -> list[Entry]:
    """Kernel artifacts and downloads, least recently used first (``sizes=False``:
    sizes left 0, for a caller that only chooses by age — walking every unpacked
    kernel tree is most of the cost)."""
    root = cache_dir()
    out = []
    for kind_dir in sorted((root / "kernels").glob("*")):
        for art in kind_dir.iterdir():
            if art.is_dir() and not art.name.endswith((".tmp", ".lock")):
                out.append(Entry(art, f"kernels/{kind_dir.name}", disk_usage(art) if sizes else 0,
                                 _last_used(art)))
    downloads = root / "downloads"
    if downloads.is_dir():
        for f in downloads.iterdir():
            if f.is_file() and ".part" not in f.name and not f.name.endswith(".lock"):
                out.append(Entry(f, "downloads", disk_usage(f) if sizes else 0, _last_used(f)))
    return sorted(out, key=lambda e: e.last_used)


def usage() -> dict[str, int]:
    """Bytes per part of the cache (kernel kinds, downloads, images, ccache, git trees)."""
    root = cache_dir()
    out: dict[str, int] = {}
    for e in prunable():
        out[e.kind] = out.get(e.kind, 0) + e.size
    for name in ("images", "ccache", "git", "debian-index", "debian-snapshot",
                 "ubuntu-mainline-index"):
        if (root / name).exists():
            out[name] = disk_usage(root / name)
    return out


def select(entries: list[Entry], *, keep: int | None, older_than: float | None,
           protect_since: float | None, now: float | None = None) -> list[Entry]:
    """Which entries to remove: beyond the ``keep`` most recent per kind and/or
    unused for ``older_than`` seconds; never one used since ``protect_since``."""
    now = time.time() if now is None else now
    chosen = []
    by_kind: dict[str, list[Entry]] = {}
    for e in entries:
        by_kind.setdefault(e.kind, []).append(e)
    for group in by_kind.values():
        newest_first = sorted(group, key=lambda e: e.last_used, reverse=True)
        for rank, e in enumerate(newest_first):
            old = older_than is not None and now - e.last_used > older_than
            surplus = keep is not None and rank >= keep
            if not (old or surplus):
                continue
            if protect_since is not None and e.last_used >= protect_since:
                continue
            chosen.append(e)
    return sorted(chosen, key=lambda e: e.last_used)


def remove(entries: list[Entry]) -> list[Entry]:
    """Delete the entries, each under its cache lock (the one :func:`paths.locked`
    takes); one that another process holds (being built or unpacked) is skipped."""
    done = []
    for e in entries:
        lock = e.path.with_name(e.path.name + ".lock")
        with lock.open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            try:
                if e.path.is_dir():
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    e.path.unlink(missing_ok=True)
                lock.unlink(missing_ok=True)  # a later resolve makes a new one
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        done.append(e)
    return done


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m`` or seconds → seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    t = text.strip().lower()
    factor = units.get(t[-1:])
    number = t[:-1] if factor else t
    value = float(number) * (factor or 1)
    if not value > 0 or value == float("inf"):
        raise ValueError(text)
    return value
