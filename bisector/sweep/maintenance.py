"""What makes a sweep safe under cron: one at a time, room to work, old evidence pruned."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import cache
from ..errors import Busy
from ..paths import cache_dir, require_free
from ..store import Store

#: what a sweep needs free before it starts (a kernel's debs and tree, run logs)
NEED_FREE = 2 << 30


class SweepLocked(Busy):
    """Another sweep of the same config holds the lock."""


@contextlib.contextmanager
def sweep_lock(results_dir: Path, name: str) -> Iterator[None]:
    """An exclusive, non-blocking lock per config name, held for the whole sweep.

    flock is released by the kernel when the process dies (kill -9 included),
    so a killed sweep never leaves a stale lock behind."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f".{name}.lock"
    fh = open(path, "a+")  # noqa: SIM115 (held for the whole sweep, closed below)
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise SweepLocked(f"another sweep of {name!r} is running (pid {holder}, lock "
                              f"{path}); this one exits without doing anything") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def check_free(results_dir: Path) -> None:
    require_free(results_dir, NEED_FREE, "a sweep")
    require_free(cache_dir(), NEED_FREE, "a sweep's kernels")


@dataclass
class Pruned:
    sweep_dirs: list[Path]
    kernels: list[Path]


def prune(results_dir: Path, sweeps: list[tuple[int, str, Path]], protected: set[int], *,
          days: float, keep_sweeps: int, kernel_days: float, now: float | None = None
          ) -> Pruned:
    """Remove sweep run directories past the retention (never the newest
    ``keep_sweeps``, never one in ``protected``: the last sweep, and sweeps whose
    regressions are still open), and cached kernels unused for ``kernel_days``
    (never one used since the oldest unfinished campaign started, nor one an open
    regression's cells used).  ``sweeps``: (id, started, dir), newest first."""
    now = time.time() if now is None else now
    gone: list[Path] = []
    keep_art: set[str] = set()
    for sid, _, d in sweeps:
        if sid in protected:
            keep_art |= _artifacts(d)
    for rank, (sid, started, d) in enumerate(sweeps):
        if rank < keep_sweeps or sid in protected or not d.exists():
            continue
        age = now - time.mktime(time.strptime(started[:19], "%Y-%m-%dT%H:%M:%S"))
        if age > days * 86400:
            shutil.rmtree(d / "cells", ignore_errors=True)  # the report pages stay
            gone.append(d)
    st = Store()
    try:
        since = st.oldest_running_since()
    finally:
        st.close()
    old = [e for e in cache.select(cache.prunable(sizes=False), keep=None,
                                   older_than=kernel_days * 86400, protect_since=since, now=now)
           if str(e.path) not in keep_art]
    removed = cache.remove(old)
    return Pruned(gone, [e.path for e in removed])


def _artifacts(sweep_dir: Path) -> set[str]:
    """The kernel artifacts a sweep's cells ran (from their result.json)."""
    out = set()
    for rj in sweep_dir.glob("cells/*/*/result.json"):
        with contextlib.suppress(OSError, ValueError):
            art = json.loads(rj.read_text()).get("artifact_dir")
            if art:
                out.add(str(art))
    return out
