"""``bisector sweep --config FILE``: the nightly job, and what it prints and returns.

Exit codes: 0 no new regression, 1 at least one new regression, 2 a bad config
(or reproducer, or kernel set), 3 infrastructure trouble (an archive that cannot
be listed, a notification that could not be sent — the results are stored and
the reports written first), 75 another sweep of the same config is running.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InfraError
from ..kernel.resolver import KernelResolver
from ..runner import RunOptions
from ..search import Handler
from .cells import CellRunner, default_concurrency
from .config import Plan, load, resolve_kernel_sets
from .maintenance import check_free, prune, sweep_lock
from .model import Category, KernelRef, Notify, Regression, SweepReport
from .nightly import RESUME_WITHIN_S, Sweep, run
from .store import SweepStore


@dataclass(frozen=True)
class SweepOptions:
    config: Path
    bisect: bool = True
    notify: bool = True
    scheduler: str | None = None


def say(text: str) -> None:
    print(f"[sweep] {text}", file=sys.stderr, flush=True)


def resolvers(plan: Plan) -> Callable[[KernelRef], KernelResolver]:
    """One resolver per line: a git line builds with every reproducer's required options
    (one build serves all the reproducers of the sweep) and the set's fragments."""
    required = sorted({o for r in plan.reproducers.values() for o in r.spec.requires.config})
    made: dict[str, KernelResolver] = {}

    def get(ref: KernelRef) -> KernelResolver:
        if ref.line not in made:
            tree = plan.trees.get(ref.line)
            made[ref.line] = KernelResolver(tree, required=required,
                                            fragments=plan.fragments.get(ref.line, []),
                                            say=say) if tree else KernelResolver()
        return made[ref.line]
    return get


def resuming(plan: Plan) -> bool:
    """A killed sweep of this config will be resumed with the kernels it planned."""
    store = SweepStore()
    try:
        row = store.unfinished(plan.key)
        return row is not None and time.time() - time.mktime(time.strptime(
            row["started"], "%Y-%m-%dT%H:%M:%S")) < RESUME_WITHIN_S
    finally:
        store.close()


def bisector_for(handler: Handler) -> Callable[[Plan, Regression, float | None, Path],
                                               Regression]:
    from .autobisect import bisect

    def go(plan: Plan, reg: Regression, rate: float | None, out: Path) -> Regression:
        return bisect(plan, reg, rate, handler, out)
    return go


def execute(opts: SweepOptions, handler: Handler) -> tuple[SweepReport, list[str]]:
    """The sweep under its lock; returns the report and the problems to report
    after it (notification failures): results are never lost to them."""
    plan = load(opts.config)  # every input error before anything is written
    cfg = plan.config
    with sweep_lock(plan.results_dir, plan.name):
        check_free(plan.results_dir)
        address = opts.scheduler or cfg.scheduler
        dask = None
        if address:  # before the kernel sets are listed: an unreachable cluster fails fast
            from ..distributed import DaskCells, RemoteCells, connect

            dask = DaskCells(connect(address), 0)
        if not resuming(plan):
            resolve_kernel_sets(plan)
        store = SweepStore()
        concurrency = cfg.concurrency if isinstance(cfg.concurrency, int) else \
            default_concurrency(cfg.run.cpus, cfg.run.memory)
        ropts = RunOptions(accel=cfg.run.accel, boot_timeout=cfg.run.boot_timeout,
                           memory_mb=cfg.run.memory, cpus=cfg.run.cpus)
        sweep = Sweep(plan, None, store, concurrency=concurrency,
                      bisect=bisector_for(handler) if opts.bisect else None, say=say)
        sweep.cells = CellRunner(plan.results_dir, ropts, attempts=cfg.run.infra_attempts,
                                 resolver_for=resolvers(plan), say=say)
        if dask is not None:
            sweep.remote = RemoteCells(dask, plan, ropts, cfg.run.infra_attempts)
            concurrency = dask.width
            say(f"Dask scheduler {address}: {concurrency} worker(s) with the qemu resource")
        say(f"{plan.name}: {len(plan.kernels)} kernel(s) × {len(plan.reproducers)} "
            f"reproducer variant(s), {concurrency} guest(s) at a time")
        report = run(sweep)
        problems = publish(report, opts)
        protected = {report.sweep_id} | {
            int(r["sweep_id"]) for r in store.db.execute(
                "SELECT sweep_id FROM regressions WHERE name = ? AND closed IS NULL",
                (plan.key,))}
        sweeps = [(int(r["id"]), str(r["started"]), Path(r["dir"]))
                  for r in store.all_sweeps(plan.key)]
        pruned = prune(plan.results_dir, sweeps, protected, days=cfg.retention.days,
                       keep_sweeps=cfg.retention.keep_sweeps,
                       kernel_days=cfg.retention.kernel_days)
        if pruned.sweep_dirs or pruned.kernels:
            say(f"retention: pruned {len(pruned.sweep_dirs)} sweep run folder(s), "
                f"{len(pruned.kernels)} cached kernel(s)")
        store.close()
        return report, problems


def publish(report: SweepReport, opts: SweepOptions) -> list[str]:
    from .notify import send
    from .site import write_site

    paths = write_site(report)
    say(f"report: {paths.page} (all sweeps: {paths.index})")
    if not opts.notify:
        return []
    cfg = load_notify(report)
    if cfg is None:
        return []
    outcome = send(report, cfg)
    for m in outcome.mails:
        say(f"mail sent: {m}")
    return list(outcome.errors)


def load_notify(report: SweepReport) -> Notify | None:
    from .config import read

    n = read(Path(report.config_path)).notify
    return n if (n.email or n.webhook) else None


def main(opts: SweepOptions, handler: Handler) -> int:
    t0 = time.monotonic()
    report, problems = execute(opts, handler)
    new = report.by_category(Category.NEW_REGRESSION)
    counts = {c: len(report.by_category(c)) for c in Category}
    print(f"sweep {report.sweep_id} ({report.name}): {len(report.cells)} cells in "
          f"{time.monotonic() - t0:.0f}s — " + ", ".join(
              f"{n} {c.value}" for c, n in counts.items() if n and c is not
              Category.STILL_PASSING) or "nothing changed")
    for reg in report.regressions:
        what = reg.culprit or f"{reg.last_good}..{reg.first_bad}"
        print(f"  REGRESSION {reg.line}: {reg.reproducer} [{reg.params}] — "
              f"{reg.status.value}: {what}" + (f" ({reg.note})" if reg.note else ""))
    print(f"report: {Path(report.sweep_dir) / 'index.html'}")
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        raise InfraError(f"sweep {report.sweep_id} finished and its reports are written, "
                         f"but {len(problems)} notification(s) failed: {problems[0]}")
    return 1 if new else 0
