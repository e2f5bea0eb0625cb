"""A campaign's steps: the memo by candidate, the step directories, the store first.

Every finished step is written to SQLite before the search hears of it (so a
crash loses nothing) and is remembered by candidate (so nothing is tested
twice, also after a resume).  Several candidates may be tested at once
(multisection, :mod:`bisector.search.multisect`) by a :class:`StepPool` — a
Dask cluster's workers (:mod:`bisector.distributed`): the steps come back here
and are recorded here, by the one writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .outcomes import Stage, Step, Terms
from .paths import reap_killed_runs, slug
from .search import Handler
from .store import Campaign, Store
from .tester import StepTester


class StepPool(Protocol):
    """Tests several candidates at once (each in the step directory given)."""

    @property
    def width(self) -> int:
        """How many candidates it tests at once."""
        ...

    def map(self, stage: Stage, items: Sequence[tuple[str, Path]]) -> list[Step]: ...


class StepLedger:
    def __init__(self, store: Store, campaign: Campaign, tester: StepTester,
                 say: Callable[[str], None], pool: StepPool | None = None) -> None:
        self.store, self.campaign, self.tester, self.say = store, campaign, tester, say
        self.pool = pool
        #: finished steps by candidate (commit sha or kernel spec): never tested twice
        self.recorded: dict[str, Step] = {}
        self._made = 0

    @property
    def width(self) -> int:
        return self.pool.width if self.pool is not None else 1

    def remember(self, step: Step) -> None:
        """A step finished earlier (a resumed campaign's) answers for its candidate."""
        self.recorded.setdefault(step.candidate, step)

    def record(self, step: Step) -> None:
        """A step known without testing (a replayed log's mark): stored and remembered."""
        self.recorded[step.candidate] = step
        self.store.add_step(self.campaign.id, step)

    def _dir(self, stage: Stage, candidate: str) -> Path:
        self._made += 1
        d = self.campaign.dir / (f"{stage.value}-{slug(candidate)[:40]}-"
                                 f"{int(time.time())}-{self._made}")
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _done(self, candidate: str, step: Step) -> Step:
        self.store.add_step(self.campaign.id, step)  # persisted before anyone hears of it
        self.recorded.setdefault(candidate, step)
        return step

    def _hit(self, candidate: str) -> Step | None:
        hit = self.recorded.get(candidate)
        if hit is not None:
            self.say(f"{candidate[:40]}: {hit.verdict.value} (recorded earlier)")
        return hit

    def test(self, stage: Stage, candidate: str) -> Step:
        return self._hit(candidate) or self.retest(stage, candidate)

    def retest(self, stage: Stage, candidate: str) -> Step:
        """Test ``candidate`` again (a repeat, not answered from the memo); recorded."""
        step_dir = self._dir(stage, candidate)
        t0 = time.monotonic()
        step = self.pool.map(stage, [(candidate, step_dir)])[0] if self.pool is not None \
            else self.tester(stage, candidate, step_dir)
        step.total_s = round(time.monotonic() - t0, 2)
        return self._done(candidate, step)

    def test_many(self, stage: Stage, candidates: Sequence[str]) -> list[Step]:
        """Each candidate from the memo or tested — the untested ones at once, on the
        pool — all recorded here, in the order given."""
        got: dict[str, Step] = {}
        todo: list[tuple[str, Path]] = []
        for c in candidates:
            hit = self._hit(c)
            if hit is not None:
                got[c] = hit
            elif c not in (t for t, _ in todo):
                todo.append((c, self._dir(stage, c)))
        if self.pool is not None and todo:
            t0 = time.monotonic()
            for (c, _), step in zip(todo, self.pool.map(stage, todo), strict=True):
                step.total_s = step.total_s or round(time.monotonic() - t0, 2)
                got[c] = self._done(c, step)
        else:
            for c, d in todo:
                t0 = time.monotonic()
                step = self.tester(stage, c, d)
                step.total_s = round(time.monotonic() - t0, 2)
                got[c] = self._done(c, step)
        return [got[c] for c in candidates]


def open_ledger(store: Store, key: str, args: dict[str, object], tester: StepTester,
                say: Callable[[str], None], pool: StepPool | None = None) -> StepLedger:
    """The unfinished campaign with this key, resumed with its steps as the memo, or a
    new one: re-running the same command continues where a crash left it."""
    existing = store.find_unfinished(key)
    if existing is not None:
        reap_killed_runs(existing.dir)  # step directories of a killed earlier attempt
        campaign = existing
    else:
        campaign = store.create(key, args)
        say(f"campaign {campaign.id}: logs in {campaign.dir}")
    ledger = StepLedger(store, campaign, tester, say, pool)
    if existing is not None:
        for s in store.steps(existing.id):
            ledger.remember(s)
        say(f"resuming campaign {existing.id}: {len(ledger.recorded)} finished step(s) "
            "will not be repeated")
    return ledger


@dataclass
class LedgerContext:
    """What the stages see of a campaign (:class:`~bisector.stages.StageContext`): its
    terms, its progress handler, and the ledger's memo and tests -- nothing else of
    the campaign, so a stage cannot reach past the ledger to the store."""

    terms: Terms
    handler: Handler
    ledger: StepLedger

    @property
    def width(self) -> int:
        return self.ledger.width

    def test(self, stage: Stage, candidate: str) -> Step:
        return self.ledger.test(stage, candidate)

    def retest(self, stage: Stage, candidate: str) -> Step:
        return self.ledger.retest(stage, candidate)

    def test_many(self, stage: Stage, candidates: list[str]) -> list[Step]:
        return self.ledger.test_many(stage, candidates)
