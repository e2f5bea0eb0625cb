"""One sweep, start to end: plan → cells → comparison → bisections → reports → mail.

Order matters for "loses nothing": the plan is resolved (and every input error
raised) before the store is touched; each cell is recorded when it finishes,
by this process only; the comparison is made only over a sweep whose cells all
finished, so a killed sweep is finished by the next invocation (or marked
incomplete after a day) and never reported as regressions.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .cells import CellRunner
from .compare import cell_changes, compare_track, known_flaky, nights_of, sort_changes
from .config import Plan
from .model import (
    Category,
    CellKey,
    CellResult,
    CellStatus,
    Change,
    KernelRef,
    NightTiming,
    Regression,
    RegressionStatus,
    SweepReport,
    SweepStatus,
)
from .store import SweepStore

#: a killed sweep older than this is not resumed but marked incomplete
RESUME_WITHIN_S = 24 * 3600

Bisect = Callable[[Plan, Regression, float | None, Path], Regression]


class CellExecutor(Protocol):
    """Runs cells and yields their results as they finish (in any order)."""

    def results(self, todo: list[CellKey], rerun: bool = False) -> Iterator[CellResult]: ...

    def bind(self, sweep_id: int) -> None:
        """The sweep these cells belong to (known once it is opened)."""
        ...


@dataclass
class LocalCells:
    """Cells in this process, ``concurrency`` guests at a time."""

    cells: CellRunner
    plan: Plan
    concurrency: int = 1

    def bind(self, sweep_id: int) -> None:
        pass

    def results(self, todo: list[CellKey], rerun: bool = False) -> Iterator[CellResult]:
        refs = {k.spec: k for k in self.plan.kernels}
        with cf.ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            futures = [pool.submit(self.cells.run, key, refs[key.kernel],
                                   self.plan.reproducers[(key.reproducer, key.params)],
                                   i + 1 if rerun else 0)
                       for i, key in enumerate(todo)]
            for fut in cf.as_completed(futures):
                yield fut.result()


@dataclass
class Sweep:
    """A sweep of one plan; collaborators passed in (tests script them)."""

    plan: Plan
    cells: CellRunner | None
    store: SweepStore
    concurrency: int = 1
    bisect: Bisect | None = None
    say: Callable[[str], None] = lambda s: None
    #: cells on a Dask cluster instead of in this process
    remote: CellExecutor | None = None
    sweep_id: int = 0
    started: str = ""
    _t0: float = field(default_factory=time.monotonic)

    # ---------------------------------------------------------------- start / resume
    def open(self) -> list[CellKey]:
        """Resume this config's unfinished sweep (its kernels as planned then) or start
        one; the cells still to run."""
        row = self.store.unfinished(self.plan.key)
        if row is not None:
            age = time.time() - time.mktime(time.strptime(row["started"], "%Y-%m-%dT%H:%M:%S"))
            if age < RESUME_WITHIN_S:
                self.sweep_id, self.started = int(row["id"]), str(row["started"])
                self.plan.kernels = [KernelRef.model_validate(k)
                                     for k in json.loads(row["plan"])["kernels"]]
                done = {c.key.id for c in self.store.cells(self.sweep_id)
                        if c.status is not CellStatus.PENDING}
                self.say(f"resuming sweep {self.sweep_id} (started {self.started}): "
                         f"{len(done)} cell(s) already done")
                return [k for k in self.plan.cells() if k.id not in done]
            self.store.set_status(int(row["id"]), SweepStatus.INCOMPLETE)
            self.say(f"sweep {row['id']} was killed more than a day ago: marked incomplete")
        plan_json = {"kernels": [k.model_dump() for k in self.plan.kernels],
                     "cells": [k.model_dump() for k in self.plan.cells()]}
        self.sweep_id = self.store.start(self.plan.key, self.plan.config_path, plan_json,
                                         self.plan.results_dir)
        row = self.store.sweep(self.sweep_id)
        assert row is not None
        self.started = str(row["started"])
        return self.plan.cells()

    @property
    def dir(self) -> Path:
        return self.plan.results_dir / f"sweep-{self.sweep_id}"

    # ---------------------------------------------------------------- cells
    def _executor(self) -> CellExecutor:
        if self.remote is not None:
            return self.remote
        assert self.cells is not None
        return LocalCells(self.cells, self.plan, self.concurrency)

    def run_cells(self, todo: list[CellKey]) -> None:
        """Each cell once (``concurrency`` guests at a time, or on the cluster);
        recorded here, by this process only, as each result arrives."""
        t0 = time.monotonic()
        for n, res in enumerate(self._executor().results(todo), 1):
            self.store.add_cell(self.sweep_id, res)
            self.say(f"[{n}/{len(todo)}] {res.key.reproducer} [{res.key.params}] on "
                     f"{res.key.kernel}: {res.status.value.upper()} — {res.reason[:120]}")
        self.store.add_wall(self.sweep_id, time.monotonic() - t0)

    def recheck_flaky(self, tonight: list[CellResult], changes: list[Change]) -> bool:
        """A regression on a track known to be flaky is run again before it is called
        one; the runs add up in the cell (disagreeing runs make it unstable)."""
        reruns = self.plan.config.run.flaky_reruns
        again = False
        for ch in changes:
            if ch.category is not Category.NEW_REGRESSION or not reruns:
                continue
            cell = next(c for c in tonight if c.key.id == ch.cell_id)
            hist = self.store.track_history(self.plan.key, cell.key, self.sweep_id)
            if not known_flaky(cell, self.started, nights_of(hist), [h[2] for h in hist]):
                continue
            self.say(f"{cell.key.track}: known to be flaky, running it {reruns} more time(s)")
            merged = cell
            for r in self._executor().results([cell.key] * reruns, rerun=True):
                if r.status.tested:
                    merged = merged.model_copy(update={
                        "runs": merged.runs + r.runs, "fails": merged.fails + r.fails,
                        "iterations": merged.iterations + r.iterations})
            self.store.add_cell(self.sweep_id, merged)
            again = True
        return again

    # ---------------------------------------------------------------- compare
    def compare(self, tonight: list[CellResult]) -> list[Change]:
        tracks: dict[tuple[str, str, str], list[CellResult]] = {}
        for c in tonight:
            tracks.setdefault((c.key.line, c.key.reproducer, c.key.params), []).append(c)
        changes: list[Change] = []
        for cells in tracks.values():
            value = max(cells, key=lambda c: c.kernel_order)  # INFRA/PENDING: no row
            hist = self.store.track_history(self.plan.key, value.key, self.sweep_id)
            ch = compare_track(value, self.started, nights_of(hist), [h[2] for h in hist])
            if ch is not None:
                changes.append(ch)
        prev = self.store.done_sweeps(self.plan.key, before=self.sweep_id, limit=1)
        before = self.store.cells(int(prev[0]["id"])) if prev else None
        changes += cell_changes(tonight, before, {c.cell_id or "" for c in changes})
        return sort_changes(changes)

    # ---------------------------------------------------------------- regressions
    def regressions(self, tonight: list[CellResult], changes: list[Change]) -> list[Regression]:
        """Tonight's new regressions, each bisected once (a known one keeps its answer)."""
        from .autobisect import endpoints, reproduce_command

        out = []
        for ch in changes:
            if ch.category is Category.FIXED:
                self.store.close_regressions(self.plan.key, ch.line, ch.reproducer, ch.params)
            if ch.category is not Category.NEW_REGRESSION:
                continue
            good, bad = endpoints(ch, tonight)
            cell = next(c for c in tonight if c.key.id == ch.cell_id)
            reg = Regression(id=0, line=ch.line, reproducer=ch.reproducer, params=ch.params,
                             last_good=good, first_bad=bad, since=self.started[:10],
                             status=RegressionStatus.NOT_BISECTED, cell_id=ch.cell_id,
                             excerpt=next((c.excerpt for c in tonight if c.key.kernel == bad
                                           and c.key.line == ch.line
                                           and c.key.reproducer == ch.reproducer
                                           and c.key.params == ch.params and c.excerpt),
                                          cell.excerpt or cell.reason))
            reg.reproduce = reproduce_command(self.plan, reg)
            known = self.store.regression(self.plan.key, reg)
            if known is not None and known.status is RegressionStatus.BISECTING \
                    and self.bisect is not None:
                # this sweep was killed while bisecting it: the campaign resumes
                self.say(f"resuming the bisection of regression #{known.id}")
                known = self.bisect(self.plan, known, ch.flake_rate,
                                    self.dir / "bisections" / f"regression-{known.id}")
                self.store.update_regression(known)
            if known is not None:
                self.say(f"{ch.line}: {ch.reproducer}: regression {good}..{bad} already "
                         f"{known.status.value} (#{known.id}): not bisected again")
                out.append(known)
                continue
            reg = self.store.add_regression(self.plan.key, self.sweep_id, reg)
            if self.bisect is not None and self.plan.config.bisect.enabled:
                reg = self.store.rebind(reg, RegressionStatus.BISECTING)
                self.say(f"bisecting {ch.line}: {ch.reproducer} [{ch.params}] between "
                         f"{good} and {bad}")
                t0 = time.monotonic()
                reg = self.bisect(self.plan, reg, ch.flake_rate,
                                  self.dir / "bisections" / f"regression-{reg.id}")
                reg.bisect_s = round(time.monotonic() - t0, 1)
                self.store.update_regression(reg)
            else:
                reg = reg.model_copy(update={"note": "auto-bisection disabled"})
                self.store.update_regression(reg)
            out.append(reg)
        return out

def report(sweep: Sweep, tonight: list[CellResult], changes: list[Change],
           regressions: list[Regression], status: SweepStatus) -> SweepReport:
    """Everything the sweep found, for the reporters and notifiers."""
    row = sweep.store.sweep(sweep.sweep_id)
    assert row is not None
    history = {c.key.id: sweep.store.cell_marks(sweep.plan.key, c.key, sweep.sweep_id)
               for c in tonight}
    timings = []
    for r in reversed(sweep.store.all_sweeps(sweep.plan.key)[:30]):
        if r["status"] == SweepStatus.INCOMPLETE.value:
            continue
        cells = sweep.store.cells(int(r["id"]))
        timings.append(NightTiming(sweep_id=int(r["id"]), date=str(r["started"])[:16],
                                   boot_s=round(sum(c.boot_s for c in cells), 1),
                                   test_s=round(sum(c.test_s for c in cells), 1),
                                   wall_s=round(float(r["wall_s"]), 1)))
    return SweepReport(
        sweep_id=sweep.sweep_id, name=sweep.plan.name,
        config_path=str(sweep.plan.config_path), started=sweep.started,
        finished=row["finished"], status=status, wall_s=round(float(row["wall_s"]), 1),
        results_dir=str(sweep.plan.results_dir), sweep_dir=str(sweep.dir),
        kernels=sweep.plan.kernels,
        reproducers=sorted({name for name, _ in sweep.plan.reproducers}),
        cells=sorted(tonight, key=lambda c: (c.key.line, c.kernel_order, c.key.reproducer,
                                             c.key.params)),
        changes=changes, regressions=regressions, history=history, timings=timings,
        reproducer_files={name: str(r.path)
                          for (name, _), r in sweep.plan.reproducers.items()})


def run(sweep: Sweep) -> SweepReport:
    """The whole sweep; the caller holds the lock."""
    todo = sweep.open()
    sweep.dir.mkdir(parents=True, exist_ok=True)
    if sweep.cells is not None:
        sweep.cells.sweep_dir = sweep.dir
    if sweep.remote is not None:
        sweep.remote.bind(sweep.sweep_id)
    if todo:
        sweep.run_cells(todo)
    tonight = sweep.store.cells(sweep.sweep_id)
    changes = sweep.compare(tonight)
    if sweep.recheck_flaky(tonight, changes):
        tonight = sweep.store.cells(sweep.sweep_id)
        changes = sweep.compare(tonight)
    regressions = sweep.regressions(tonight, changes)
    sweep.store.set_status(sweep.sweep_id, SweepStatus.DONE)
    return report(sweep, tonight, changes, regressions, SweepStatus.DONE)
