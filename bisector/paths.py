"""Where things live on disk.

Cache (kernels, guest images, probe results) is shared across runs and safe to
delete; runs (logs, transcripts, reports) are evidence and never deleted by us.
Both follow XDG and can be overridden (BISECTOR_CACHE / BISECTOR_RUNS or CLI
flags), which is what the tests do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BisectorError, InfraError, UserError


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
    """A fresh, unique directory for one run's evidence (dead siblings are reaped first)."""
    root = parent or runs_dir()
    reap_killed_runs(root)
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


#: errno values that mean the machine ran out of room (infrastructure, not input)
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT}


def os_error(exc: OSError, doing: str = "") -> BisectorError:
    """An OSError as the one-line error it is: no room or an I/O fault is the
    machine's (InfraError); a path that is read-only, not a directory, or not
    allowed is the setting's (UserError, with the variable or flag to change)."""
    where = f"{exc.filename}: " if exc.filename else ""
    what = f" while {doing}" if doing else ""
    if exc.errno in _NO_ROOM:
        return InfraError(f"{where}no space left on device{what} (free some space, or move "
                          "BISECTOR_CACHE / BISECTOR_RUNS to a larger disk)")
    if exc.errno == errno.EIO:
        return InfraError(f"{where}I/O error{what}")
    return UserError(f"{where}{exc.strerror or exc}{what} (check the path, or choose another "
                     "with --run-dir / --report-dir / BISECTOR_RUNS / BISECTOR_CACHE)")


def require_free(path: Path, need: int, doing: str) -> None:
    """Refuse to start ``doing`` when the file system of ``path`` has less than ``need``
    bytes free: a clear message now instead of a truncated file later."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise InfraError(f"{probe}: only {free >> 20} MiB free, {doing} needs about "
                         f"{need >> 20} MiB (free some space, or move BISECTOR_CACHE)")


def disk_usage(path: Path) -> int:
    """Bytes held by a file or a tree (files not followed through symlinks; a file
    that vanishes meanwhile counts 0): what a cache entry or an image's input weighs."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` is either the old file or the whole new one
    (a full disk leaves no empty ``result.json``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise os_error(exc, f"writing {path}") from exc


#: in a run directory while its run is in progress: who runs it (pid and start time)
RUN_PID = "run.pid"


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` (field 22 of /proc/PID/stat), None if it is gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_line.rsplit(")", 1)[1].split()[19]


def mark_running(run_dir: Path) -> None:
    """Say that this process runs ``run_dir``; a ``kill -9`` leaves the file behind."""
    pid = os.getpid()
    write_atomic(run_dir / RUN_PID, json.dumps({"pid": pid, "start": _process_start(pid)}))


def mark_finished(run_dir: Path) -> None:
    (run_dir / RUN_PID).unlink(missing_ok=True)


def reap_killed_runs(root: Path) -> list[Path]:
    """Run directories whose process died without finishing (SIGKILL, power loss):
    record ``"status": "killed"`` in their ``result.json`` and drop the overlay disk.

    The pid's start time is compared too, so a reused pid is not taken for the run."""
    reaped: list[Path] = []
    try:
        pidfiles = list(root.glob(f"*/{RUN_PID}")) + list(root.glob(f"campaign-*/*/{RUN_PID}"))
    except OSError:
        return reaped
    for pidfile in pidfiles:
        try:
            info = json.loads(pidfile.read_text())
            started = _process_start(int(info["pid"]))
            alive = started is not None and started == info.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            alive = False
        if alive:
            continue
        run_dir = pidfile.parent
        result = run_dir / "result.json"
        try:
            data = json.loads(result.read_text()) if result.exists() else {}
        except (OSError, ValueError):
            data = {}
        data.update(status="killed", verdict=None, run_dir=str(run_dir),
                    error="the run's process died without finishing (killed?); "
                          "its evidence up to then is in this directory")
        try:
            result.write_text(json.dumps(data, indent=2))
            (run_dir / "overlay.qcow2").unlink(missing_ok=True)
            pidfile.unlink()
        except OSError:
            continue
        reaped.append(run_dir)
    return reaped
