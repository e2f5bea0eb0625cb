"""Running a sweep's cells with exactly the machinery of ``bisector run``.

Each kernel is fetched or built once per sweep (:meth:`CellRunner.kernel`),
however many reproducers use it; each cell is one :func:`bisector.runner.run`
in a run directory of its own under the sweep's.  An infrastructure failure
(a download, QEMU, SSH trouble: an :class:`~bisector.errors.InfraError`) is
retried up to ``infra_attempts`` times, as KernelCI retries a job; when every
attempt failed the cell is INFRA — no result, never a kernel's.  A kernel that
cannot be tested (build/boot failure, missing option: Untestable) is SKIP.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import runner
from ..errors import InfraError, Untestable, UserError
from ..kernel.base import KernelArtifact
from ..kernel.resolver import KernelResolver
from ..paths import slug
from ..reproducer import Reproducer
from ..verdict import Verdict
from .model import CellKey, CellResult, CellStatus, KernelRef

log = logging.getLogger(__name__)

RunFn = Callable[..., runner.RunResult]
EXCERPT_LINES = 25


def default_concurrency(cpus: int, memory_mb: int) -> int:
    """Guests that fit: one per ``cpus`` host cores, and in the memory left after 2 GiB."""
    cores = os.cpu_count() or 1
    try:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") // (1 << 20)
    except (ValueError, OSError):
        avail = 4096
    by_mem = max(1, (avail - 2048) // (memory_mb + 256))
    return max(1, min(cores // max(1, cpus), by_mem))


@dataclass
class KernelOutcome:
    """A kernel fetched/built once: the artifact, or why it cannot be used tonight."""

    artifact: KernelArtifact | None = None
    untestable: str | None = None     # SKIP for all its cells
    infra: str | None = None          # INFRA for all its cells (after the retries)
    attempts: int = 1
    fetch_s: float = 0.0


@dataclass
class CellRunner:
    """Turns cells into :class:`CellResult` (collaborators passed in, so tests script them)."""

    sweep_dir: Path
    opts: runner.RunOptions
    attempts: int = 3
    run_fn: RunFn = runner.run
    resolver_for: Callable[[KernelRef], KernelResolver] = field(
        default=lambda k: KernelResolver())
    say: Callable[[str], None] = lambda s: None
    retry_pause: float = 2.0
    _kernels: dict[str, KernelOutcome] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def kernel(self, ref: KernelRef) -> KernelOutcome:
        """Fetch or build ``ref`` once per sweep (retrying infrastructure trouble)."""
        with self._lock:
            if ref.spec in self._kernels:
                return self._kernels[ref.spec]
            t0 = time.monotonic()
            out = KernelOutcome()
            for attempt in range(1, self.attempts + 1):
                out.attempts = attempt
                try:
                    out.artifact = self.resolver_for(ref).resolve(ref.spec)
                    out.infra = None
                    break
                except Untestable as exc:
                    out.untestable = f"cannot test {ref.spec}: {exc}"
                    break
                except UserError:
                    raise
                except InfraError as exc:
                    out.infra = f"{ref.spec}: {exc}"
                    self.say(f"kernel {ref.spec}: attempt {attempt}/{self.attempts} "
                             f"failed: {exc}")
                    if attempt < self.attempts:
                        time.sleep(self.retry_pause)
            out.fetch_s = round(time.monotonic() - t0, 2)
            self._kernels[ref.spec] = out
            return out

    def cell_dir(self, key: CellKey) -> Path:
        return self.sweep_dir / "cells" / f"{slug(key.reproducer)}-{slug(key.params)}" / \
            f"{slug(key.kernel)[:60]}-{key.id[:8]}"

    def run(self, key: CellKey, ref: KernelRef, repro: Reproducer,
            rerun: int = 0) -> CellResult:
        """One cell: its kernel (shared), then up to ``attempts`` runs while the
        infrastructure fails.  Each attempt (and each re-run of a flaky cell,
        ``rerun`` > 0) keeps its own evidence directory."""
        base = dict(key=key, kernel_order=ref.order, kernel_label=ref.label)
        k = self.kernel(ref)
        top = self.cell_dir(key) / (f"rerun-{rerun}" if rerun else "")
        top.mkdir(parents=True, exist_ok=True)
        if k.infra is not None:
            (top / "infra.txt").write_text(k.infra + "\n")
            return CellResult(status=CellStatus.INFRA, reason=k.infra, attempts=k.attempts,
                              run_dir=str(top), **base)  # type: ignore[arg-type]
        if k.untestable is not None:
            (top / "untestable.txt").write_text(k.untestable + "\n")
            return CellResult(status=CellStatus.SKIP, reason=k.untestable, run_dir=str(top),
                              **base)  # type: ignore[arg-type]
        last = ""
        for attempt in range(1, self.attempts + 1):
            run_dir = top if attempt == 1 else top / f"attempt-{attempt}"
            run_dir.mkdir(parents=True, exist_ok=True)
            try:
                res = self.run_fn(ref.spec, repro, run_dir, self.opts, artifact=k.artifact)
            except InfraError as exc:
                last = f"{exc.__class__.__name__}: {exc}"
                self.say(f"{key.track} on {ref.spec}: attempt {attempt}/{self.attempts}: "
                         f"{last}")
                (run_dir / "infra.txt").write_text(last + "\n")
                if attempt < self.attempts:
                    time.sleep(self.retry_pause)
                continue
            return self._result(res, run_dir, attempt, base)
        return CellResult(status=CellStatus.INFRA, reason=f"no result after {self.attempts} "
                          f"attempts: {last}", attempts=self.attempts, run_dir=str(top),
                          **base)  # type: ignore[arg-type]

    @staticmethod
    def _result(res: runner.RunResult, run_dir: Path, attempt: int,
                base: dict[str, object]) -> CellResult:
        assert res.verdict is not None
        its = [i["verdict"] for i in res.iterations]
        status = CellStatus(res.verdict.value)
        return CellResult(
            status=status, reason=res.reason, runs=len(its),
            fails=sum(1 for v in its if v == Verdict.BAD.value), attempts=attempt,
            boot_s=res.phases.get("boot", 0.0), test_s=res.phases.get("test", 0.0),
            total_s=round(sum(res.phases.values()), 2), run_dir=str(run_dir),
            excerpt=excerpt(run_dir, res) if status is CellStatus.BAD else "",
            iterations=its, **base)  # type: ignore[arg-type]


def excerpt(run_dir: Path, res: runner.RunResult) -> str:
    """The failure as a person reads it: the failing iteration's output tail (and a
    crash line from its kernel log); the verdict's reason when nothing was printed."""
    for i, it in enumerate(res.iterations, 1):
        if it["verdict"] != Verdict.BAD.value:
            continue
        lines: list[str] = [f"iteration {i}: {it['reason']}"]
        try:
            data = json.loads((run_dir / f"iteration-{i}.json").read_text())
        except (OSError, ValueError):
            data = {}
        for step in data.get("steps", []):
            if step.get("phase") == "cleanup":
                continue
            for stream in ("stdout", "stderr"):
                text = str(step.get(stream) or "").rstrip()
                if text:
                    lines.append(f"[{step.get('name', '?')} {stream}]")
                    lines.extend(text.splitlines()[-EXCERPT_LINES:])
        from ..verdict import find_crash

        try:
            crash = find_crash((run_dir / f"dmesg-iteration-{i}.txt").read_text(
                errors="replace"))
        except OSError:
            crash = None
        if crash:
            lines.append(f"[kernel] {crash}")
        return "\n".join(lines[-(EXCERPT_LINES * 2):])
    return res.reason or "BAD (no output recorded)"
