"""The bisection loop: ask the search for a candidate, test it, record it, mark it.

It knows nothing about kernels or QEMU: the tester (build/boot/run, or a
script in unit tests) and the recorder (the store) are passed in, and a
:class:`Handler` receives progress events (the CLI prints them, the sweep logs
them, tests collect them), as in mozregression's Bisector.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..outcomes import Stage, StageResult, Step
from .base import Bisection


class Handler:
    """Progress events; the default does nothing (subclass what you need)."""

    def stage_started(self, stage: Stage, bisection: Bisection) -> None: ...

    def step_started(self, stage: Stage, index: int, candidate: str, left: int) -> None: ...

    def step_finished(self, stage: Stage, index: int, step: Step) -> None: ...

    def stage_finished(self, stage: Stage, result: StageResult) -> None: ...

    def message(self, text: str) -> None: ...


#: (stage, candidate) -> the tested step; a Step whose stage/candidate are those given
Tester = Callable[[Stage, str], Step]
#: persist a finished step (before the search hears of it, so a crash loses nothing)
Recorder = Callable[[Step], None]
#: (stage, candidates) -> their tested steps, in order: several at once (multisection)
ManyTester = Callable[[Stage, list[str]], list[Step]]


@runtime_checkable
class Multisectable(Protocol):
    """A search that can offer several candidates per round (see :mod:`.multisect`)."""

    def next_many(self, k: int) -> list[str]: ...


class Bisector:
    """Runs a bisection to the end: ask, test, record, mark."""

    def __init__(self, tester: Tester, handler: Handler | None = None,
                 recorder: Recorder | None = None, many: ManyTester | None = None,
                 width: int = 1) -> None:
        self.tester = tester
        self.handler = handler or Handler()
        self.recorder = recorder
        #: with ``width`` > 1 testers (workers), rounds of ``width`` candidates
        self.many = many
        self.width = width
        self.rounds = 0

    def run(self, stage: Stage, bisection: Bisection, start_index: int = 0) -> StageResult:
        self.handler.stage_started(stage, bisection)
        if self.width > 1 and self.many is not None and isinstance(bisection, Multisectable):
            return self._rounds(stage, bisection, bisection, start_index)
        index = start_index
        while True:
            cand = bisection.next()
            if cand is None:
                break
            index += 1
            self.rounds += 1
            self.handler.step_started(stage, index, cand, bisection.steps_left())
            step = self.tester(stage, cand)
            if self.recorder is not None:
                self.recorder(step)
            bisection.mark(cand, step.verdict)
            self.handler.step_finished(stage, index, step)
        result = bisection.result()
        self.handler.stage_finished(stage, result)
        return result

    def _rounds(self, stage: Stage, bisection: Bisection, multi: Multisectable,
                index: int) -> StageResult:
        """Multisection: each round tests up to ``width`` candidates at once (offered
        oldest first); all are recorded and marked before the next round is chosen."""
        assert self.many is not None
        while True:
            cands = multi.next_many(self.width)
            if not cands:
                break
            self.rounds += 1
            for i, c in enumerate(cands, index + 1):
                self.handler.step_started(stage, i, c, bisection.steps_left())
            steps = self.many(stage, cands)
            for step in steps:
                index += 1
                if self.recorder is not None:
                    self.recorder(step)
                self.handler.step_finished(stage, index, step)
            # newest (heaviest) first: git keeps one "new" ref, the last one marked, so
            # the oldest new candidate must be marked last
            for cand, step in reversed(list(zip(cands, steps, strict=True))):
                bisection.mark(cand, step.verdict)
        result = bisection.result()
        self.handler.stage_finished(stage, result)
        return result
