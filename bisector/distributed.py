"""Scale-out on Dask distributed: sweep cells and bisection steps as Dask tasks.

Without ``--scheduler`` everything runs in this process, as before.  With it,
each unit of work — a sweep cell, a bisection step's build and test — is a
task on a worker started with Dask's own command::

    dask scheduler --port 8786
    dask worker tcp://HOST:8786 --nthreads 1 --resources "qemu=1"

Only the caller records results (one writer to the SQLite store): a task
returns its typed result (:class:`~bisector.sweep.model.CellResult`,
:class:`~bisector.outcomes.Step`) and the caller stores it when its future
resolves, which Dask does once per key.  Keys are explicit and unique per
unit — ``cell-<sweep>-<cell>-<attempt>``, ``step-<campaign>-<stage>-<commit>-<n>``
— so repeated runs of one reproducer on one kernel never collapse into one
cached future, and a task re-executed after its worker died (Dask re-runs it
elsewhere, up to ``distributed.scheduler.allowed-failures``) still yields one
result.  Workers must see the same paths as the caller: the reproducer files,
the kernel tree (a git line or a bisection) and the run directories (where the
evidence goes); each keeps its own kernel cache, ccache and build tree unless
``BISECTOR_CACHE`` points at a shared one.

Locality: a kernel's cells go preferably to the worker that already ran one of
its cells (it has the kernel unpacked); kernels nobody holds yet are spread
over the workers.  A bisection step goes preferably to the worker whose last
build was the nearest commit (its build tree and ccache make the build
incremental).  Preferences are soft (``allow_other_workers``): a busy or dead
worker never blocks the work.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InfraError, UserError
from .outcomes import Stage, Step
from .runner import RunOptions, RunResult
from .sweep.config import Plan
from .sweep.model import CellKey, CellResult, KernelRef

RESOURCE = {"qemu": 1}


def connect(address: str, timeout: float = 15) -> Any:
    """A client of the scheduler at ``address`` (``tcp://HOST:8786``)."""
    if not address.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
        raise UserError(f"--scheduler {address!r}: expected an address like "
                        "tcp://HOST:8786")
    import distributed

    try:
        return distributed.Client(address, timeout=timeout)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise InfraError(f"Dask scheduler {address}: cannot connect ({exc})") from exc


def _cluster_fault(exc: BaseException, what: str) -> InfraError:
    """The cluster lost the work (every worker that took it died: KilledWorker; the
    scheduler went away; a cancelled future): infrastructure, never a verdict."""
    try:
        why = str(exc)
    except Exception:  # an exception whose message cannot be formatted
        why = "(no message)"
    return InfraError(f"Dask: {what}: {exc.__class__.__name__}: {why}")


def result_of(fut: Any, what: str) -> Any:
    """A task's result; bisector's own errors as they were raised on the worker,
    the cluster's as an InfraError."""
    import asyncio

    import distributed
    from distributed.comm.core import CommClosedError

    try:
        return fut.result()
    except (distributed.KilledWorker, CommClosedError,
            asyncio.CancelledError, distributed.TimeoutError, OSError) as exc:
        raise _cluster_fault(exc, what) from exc


def qemu_workers(client: Any) -> list[str]:
    """Addresses of the workers that declare the ``qemu`` resource, sorted."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    return sorted(a for a, w in info.items() if w.get("resources", {}).get("qemu", 0) >= 1)


def _require_workers(client: Any) -> list[str]:
    workers = qemu_workers(client)
    if not workers:
        raise InfraError(f"Dask scheduler {client.scheduler.address}: no worker with the "
                         "'qemu' resource (start them with: dask worker ADDRESS "
                         "--nthreads 1 --resources qemu=1)")
    return workers


# ---------------------------------------------------------------- sweep cells

@dataclass(frozen=True)
class CellJob:
    """Everything a worker needs to run one cell (picklable, paths absolute)."""

    key: CellKey
    ref: KernelRef
    repro: str
    overrides: dict[str, str]
    sweep_dir: str
    opts: RunOptions
    attempts: int
    required: tuple[str, ...] = ()
    fragments: tuple[str, ...] = ()
    #: a flaky cell's re-run n (its own evidence directory)
    rerun: int = 0


#: per worker process: one cell runner per sweep directory (its kernels fetched once)
_RUNNERS: dict[str, Any] = {}


def run_cell_job(job: CellJob) -> CellResult:
    """On the worker: the cell, exactly as the in-process sweep runs it."""
    from . import reproducer
    from .kernel.resolver import KernelResolver
    from .sweep.cells import CellRunner

    runner = _RUNNERS.get(job.sweep_dir)
    if runner is None:
        def resolver(ref: KernelRef) -> KernelResolver:
            if ref.tree:
                return KernelResolver(Path(ref.tree), required=job.required,
                                      fragments=[Path(f) for f in job.fragments])
            return KernelResolver()
        runner = CellRunner(Path(job.sweep_dir), job.opts, attempts=job.attempts,
                            resolver_for=resolver)
        _RUNNERS[job.sweep_dir] = runner
    repro = reproducer.load(Path(job.repro), job.overrides)
    result: CellResult = runner.run(job.key, job.ref, repro, job.rerun)
    return result.model_copy(update={"worker": f"{socket.gethostname()}:{os.getpid()}"})


@dataclass
class DaskCells:
    """Runs cells on the cluster; yields each result as it arrives (the caller records)."""

    client: Any
    sweep_id: int
    #: kernel spec → the worker that has it (set as results come back)
    holder: dict[str, str] = field(default_factory=dict)
    _serial: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def width(self) -> int:
        return len(_require_workers(self.client))

    def results(self, jobs: Sequence[CellJob]) -> Iterator[CellResult]:
        import distributed

        workers = _require_workers(self.client)
        spread = {k: workers[i % len(workers)] for i, k in
                  enumerate(dict.fromkeys(j.ref.spec for j in jobs))}
        futures = {}
        for job in jobs:
            where = self.holder.get(job.ref.spec) or spread[job.ref.spec]
            key = f"cell-{self.sweep_id}-{job.key.id}-{next(self._serial)}"
            fut = self.client.submit(run_cell_job, job, key=key, pure=False,
                                     resources=RESOURCE, workers=[where],
                                     allow_other_workers=True)
            futures[fut] = job
        for fut in distributed.as_completed(futures):  # type: ignore[no-untyped-call]
            job = futures[fut]
            res: CellResult = result_of(fut, f"cell {job.key.track} on {job.ref.spec}")
            who = self.client.who_has(fut).get(fut.key) or ()
            if who:
                self.holder.setdefault(job.ref.spec, who[0])
            yield res


@dataclass
class RemoteCells:
    """A sweep's :class:`~bisector.sweep.nightly.CellExecutor` on the cluster."""

    dask: DaskCells
    plan: Plan
    opts: RunOptions
    attempts: int

    def bind(self, sweep_id: int) -> None:
        self.dask.sweep_id = sweep_id

    def results(self, todo: list[CellKey], rerun: bool = False) -> Iterator[CellResult]:
        from .sweep.config import overrides_of

        refs = {k.spec: k for k in self.plan.kernels}
        required = tuple(sorted({o for r in self.plan.reproducers.values()
                                 for o in r.spec.requires.config}))
        jobs = []
        for i, key in enumerate(todo):
            repro = self.plan.reproducers[(key.reproducer, key.params)]
            jobs.append(CellJob(
                key=key, ref=refs[key.kernel], repro=str(repro.path),
                overrides=overrides_of(self.plan, key.reproducer, key.params),
                sweep_dir=str(self.plan.results_dir / f"sweep-{self.dask.sweep_id}"),
                opts=self.opts, attempts=self.attempts, required=required,
                fragments=tuple(str(f) for f in self.plan.fragments.get(key.line, [])),
                rerun=i + 1 if rerun else 0))
        yield from self.dask.results(jobs)


# ---------------------------------------------------------------- bisection steps

@dataclass(frozen=True)
class StepJob:
    """What a worker needs to test bisection candidates of one campaign (``label``:
    a unique name for it, in task keys and the worker's tester cache)."""

    label: str
    repro: str
    params: dict[str, str]
    opts: RunOptions
    tree: str | None
    required: tuple[str, ...]
    fragments: tuple[str, ...]


_TESTERS: dict[str, Any] = {}


def run_step_job(job: StepJob, stage: Stage, candidate: str, step_dir: str) -> Step:
    """On the worker: build (or fetch) the candidate, boot it, run the reproducer."""
    from . import reproducer
    from .kernel.resolver import KernelResolver
    from .tester import KernelTester

    tester = _TESTERS.get(job.label)
    if tester is None:
        repro = reproducer.load(Path(job.repro), job.params)
        kernels = KernelResolver(Path(job.tree) if job.tree else None, required=job.required,
                                 fragments=[Path(f) for f in job.fragments])
        tester = KernelTester(repro, job.opts, kernels, lambda s: None)
        _TESTERS[job.label] = tester
    step: Step = tester(stage, candidate, Path(step_dir))
    return step


@dataclass
class DaskSteps:
    """A :class:`~bisector.ledger.StepPool` on the cluster: one round's candidates at
    once, each preferably where the nearest commit was built."""

    client: Any
    job: StepJob
    #: the order of the candidates (commit → position), for "nearest built"
    position: dict[str, int] = field(default_factory=dict)
    last_built: dict[str, int] = field(default_factory=dict)  # worker → position
    _serial: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def width(self) -> int:
        return len(_require_workers(self.client))

    def _placement(self, candidates: Sequence[str], workers: list[str]) -> dict[str, str]:
        free = list(workers)
        out: dict[str, str] = {}
        for c in candidates:
            if not free:
                free = list(workers)
            pos = self.position.get(c)
            if pos is None:
                out[c] = free.pop(0)
                continue
            best = min(free, key=lambda w: abs(self.last_built.get(w, -10**9) - pos))
            free.remove(best)
            out[c] = best
        return out

    def _locate(self, candidates: Sequence[str]) -> None:
        """A commit's place in history (its ancestor count): nearby commits build
        incrementally on each other."""
        from .git import git

        if not self.job.tree:
            return
        for c in candidates:
            if c not in self.position and all(ch in "0123456789abcdef" for ch in c):
                r = git(Path(self.job.tree), "rev-list", "--count", c, check=False)
                if r.returncode == 0 and r.stdout.strip().isdigit():
                    self.position[c] = int(r.stdout.strip())

    def map(self, stage: Stage, items: Sequence[tuple[str, Path]]) -> list[Step]:
        workers = _require_workers(self.client)
        self._locate([c for c, _ in items])
        where = self._placement([c for c, _ in items], workers)
        futures = []
        for cand, step_dir in items:
            key = f"step-{self.job.label}-{stage.value}-{cand[:12]}-{next(self._serial)}"
            futures.append(self.client.submit(run_step_job, self.job, stage, cand,
                                              str(step_dir), key=key, pure=False,
                                              resources=RESOURCE, workers=[where[cand]],
                                              allow_other_workers=True))
        steps: list[Step] = [result_of(f, f"{stage.value} step {c[:12]}")
                             for f, (c, _) in zip(futures, items, strict=True)]
        for (cand, _), fut in zip(items, futures, strict=True):
            who = self.client.who_has(fut).get(fut.key) or ()
            if who and cand in self.position:
                self.last_built[who[0]] = self.position[cand]
        return steps


def step_pool(address: str, repro: str, params: dict[str, str], opts: RunOptions,
              tree: str | None, fragments: Sequence[str]) -> DaskSteps:
    """The pool a ``bisector bisect --scheduler`` campaign tests on."""
    import uuid

    from . import reproducer

    required = tuple(reproducer.load(Path(repro), params).spec.requires.config)
    job = StepJob(label=f"{os.getpid()}-{uuid.uuid4().hex[:8]}", repro=repro, params=params,
                  opts=opts, tree=tree, required=required, fragments=tuple(fragments))
    pool = DaskSteps(connect(address), job)
    _require_workers(pool.client)
    return pool


def run_remote(address: str, spec: str, repro: str, params: dict[str, str], run_dir: Path,
               opts: RunOptions, tree: str | None, fragments: Sequence[str]) -> RunResult:
    """``bisector run --scheduler``: the run on a worker; its RunResult comes back."""
    client = connect(address)
    _require_workers(client)
    fut = client.submit(_run_job, spec, repro, params, str(run_dir), opts, tree,
                        tuple(fragments), key=f"run-{run_dir.name}-{os.getpid()}",
                        pure=False, resources=RESOURCE)
    res: RunResult = result_of(fut, f"run of {spec}")
    return res


def _run_job(spec: str, repro_path: str, params: dict[str, str], run_dir: str,
             opts: RunOptions, tree: str | None, fragments: tuple[str, ...]) -> RunResult:
    from . import reproducer, runner
    from .kernel.resolver import KernelResolver

    repro = reproducer.load(Path(repro_path), params)
    kernels = KernelResolver(Path(tree) if tree else None,
                             required=repro.spec.requires.config,
                             fragments=[Path(f) for f in fragments])
    return runner.run(spec, repro, Path(run_dir), opts, kernels=kernels)
