"""The policies the flaky benchmark (``bench/flaky.py``) compares the Bayesian search with.

Each turns a commit's runs into one verdict, then bisects on verdicts:

* :class:`PlainPolicy` -- one run per commit: what bisector does today;
* :class:`SyzbotPolicy` -- syzkaller's ``pkg/bisect`` (``test()`` and
  ``bisectionDecision()``): 10 runs per commit, 20 on the first test and once the
  bug looks flaky (a BAD verdict with under half the runs crashing); BAD needs at
  least max(2, runs / 6) crashes and half the runs with a result, GOOD needs no
  crash and half (flaky: three quarters) of the runs good, anything else is SKIP;
* :class:`RepeatPolicy` -- k runs per commit, BAD on a majority of the runs that
  gave a result (a tie counts as BAD: a failure is the stronger evidence).

All check the known-new end first, as bisector's campaign verifies its endpoints
and syzbot re-tests the crash commit: if it is not BAD, the answer is "no
culprit".  A SKIP verdict is handled like ``git bisect skip`` (and
:class:`~bisector.search.ListBisection`): the next commit halves the untested ones.
None of them has a notion of confidence; they claim certainty (1.0).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass
from typing import Protocol

from ..verdict import Verdict


@dataclass(frozen=True)
class PolicyAnswer:
    """A culprit, "no culprit" (``flake``), or neither (inconclusive: only skipped left)."""

    culprit: int | None
    flake: bool = False
    confidence: float = 1.0


class RunPolicy(Protocol):
    """A search driven one run at a time: which candidate to run, then its verdict."""

    def next_candidate(self) -> int | None: ...

    def record(self, candidate: int, verdict: Verdict) -> None: ...

    def answer(self) -> PolicyAnswer: ...


class _Judge(Protocol):
    def runs_wanted(self) -> int: ...

    def decide(self, fails: int, passes: int, skips: int) -> Verdict: ...


class _Range:
    """Binary search for the first BAD of 0..n-1, after checking that n-1 is BAD."""

    def __init__(self, n: int) -> None:
        self.lo, self.hi = -1, n - 1  # last known good (-1: the known-old end), first bad
        self.skipped: list[int] = []
        self.tip: Verdict | None = None  # the known-new end's verdict, once tested

    def next(self) -> int | None:
        if self.tip is None:
            return self.hi
        if self.tip is not Verdict.BAD:
            return None
        lo_at = bisect_right(self.skipped, self.lo)
        n_open = self.hi - self.lo - 1 - (bisect_right(self.skipped, self.hi - 1) - lo_at)
        if n_open <= 0:
            return None
        k = (n_open + 1) // 2 - 1  # ListBisection: halve the untested ones plus the bad end
        c = self.lo + 1 + k
        while True:  # the k-th untested candidate after lo: skip the skipped ones
            shifted = self.lo + 1 + k + bisect_right(self.skipped, c) - lo_at
            if shifted == c:
                return c
            c = shifted

    def mark(self, c: int, verdict: Verdict) -> None:
        if self.tip is None:
            self.tip = verdict
        elif verdict is Verdict.SKIP:
            insort(self.skipped, c)
        elif verdict is Verdict.BAD:
            self.hi = c
        else:
            self.lo = c

    def answer(self) -> PolicyAnswer:
        if self.tip is Verdict.GOOD:
            return PolicyAnswer(None, flake=True)
        if self.tip is Verdict.BAD and self.hi == self.lo + 1:
            return PolicyAnswer(self.hi)
        return PolicyAnswer(None)


class _VerdictPolicy:
    """Runs the current commit until its judge has a verdict, then bisects on it."""

    def __init__(self, n: int, judge: _Judge) -> None:
        self._range = _Range(n)
        self._judge = judge
        self._current: int | None = None
        self._counts = [0, 0, 0]  # fails, passes, skips on the current commit

    def next_candidate(self) -> int | None:
        if self._current is None:
            self._current = self._range.next()
            self._counts = [0, 0, 0]
        return self._current

    def record(self, candidate: int, verdict: Verdict) -> None:
        slot = {Verdict.BAD: 0, Verdict.GOOD: 1, Verdict.SKIP: 2}[verdict]
        self._counts[slot] += 1
        if sum(self._counts) >= self._judge.runs_wanted():
            self._range.mark(candidate, self._judge.decide(*self._counts))
            self._current = None

    def answer(self) -> PolicyAnswer:
        return self._range.answer()


class _OneRun:
    def runs_wanted(self) -> int:
        return 1

    def decide(self, fails: int, passes: int, skips: int) -> Verdict:
        return Verdict.SKIP if skips else Verdict.BAD if fails else Verdict.GOOD


class _Majority:
    def __init__(self, k: int) -> None:
        self.k = k

    def runs_wanted(self) -> int:
        return self.k

    def decide(self, fails: int, passes: int, skips: int) -> Verdict:
        if fails + passes == 0:
            return Verdict.SKIP
        return Verdict.BAD if 2 * fails >= fails + passes else Verdict.GOOD


class _Syzbot:
    """syzkaller pkg/bisect: ``test()`` run counts and ``bisectionDecision()`` thresholds.

    Unrelated crashes are syzbot's "transient" ones: neither good, bad nor infra,
    so they only shrink the counts the thresholds look at.
    """

    max_runs = 20

    def __init__(self) -> None:
        self.first = True
        self.flaky = False

    def runs_wanted(self) -> int:
        return self.max_runs if self.first or self.flaky else self.max_runs // 2

    def decide(self, fails: int, passes: int, skips: int) -> Verdict:
        total = fails + passes + skips
        want_bad = max(2, total // 6)
        want_good = total * 3 // 4 if self.flaky else total // 2
        if fails == 0 and passes >= want_good:
            verdict = Verdict.GOOD
        elif fails >= want_bad and fails + passes >= total // 2:
            verdict = Verdict.BAD
        else:
            verdict = Verdict.SKIP
        self.first = False
        if verdict is Verdict.BAD and fails / (fails + passes) < 0.5:
            self.flaky = True  # once flaky, always flaky
        return verdict


class PlainPolicy(_VerdictPolicy):
    def __init__(self, n: int) -> None:
        super().__init__(n, _OneRun())


class SyzbotPolicy(_VerdictPolicy):
    def __init__(self, n: int) -> None:
        super().__init__(n, _Syzbot())


class RepeatPolicy(_VerdictPolicy):
    def __init__(self, n: int, k: int = 8) -> None:
        super().__init__(n, _Majority(k))
