"""Where things live on disk.

Cache (kernels, guest images, probe results) is shared across runs and safe to
delete; runs (logs, transcripts, reports) are evidence and never deleted by us.
Both follow XDG and can be overridden (BISECTOR_CACHE / BISECTOR_RUNS or CLI
flags), which is what the tests do.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    env = os.environ.get("BISECTOR_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bisector"


def runs_dir() -> Path:
    env = os.environ.get("BISECTOR_RUNS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "bisector" / "runs"


def slug(text: str) -> str:
    """A file-name-safe rendering of a kernel spec or reproducer name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_")[:80] or "x"


def new_run_dir(kernel: str, repro: str, parent: Path | None = None) -> Path:
    """A fresh, unique directory for one run's evidence."""
    root = parent or runs_dir()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{stamp}-{slug(kernel)}-{slug(repro)}"
    path = base
    n = 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = Path(f"{base}-{n}")


@contextmanager
def locked(target: Path) -> Iterator[None]:
    """An exclusive lock (``<target>.lock``) so concurrent runs build a cache entry once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
