"""Binary search over an ordered list of prebuilt kernels (oldest first)."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UserError
from ..outcomes import StageResult, Terms
from ..verdict import Verdict


class ListBisection:
    """Binary search over an ordered list (oldest first) of prebuilt kernels."""

    def __init__(self, items: Sequence[str], terms: Terms | None = None) -> None:
        if len(items) < 2:
            raise UserError("need at least two kernels to bisect between")
        self.items = list(items)
        self.terms = terms or Terms()
        self.marks: dict[int, Verdict] = {}
        self.lo = 0  # known old
        self.hi = len(items) - 1  # known new
        #: set when a verdict contradicts an earlier one: the search is over, with no answer
        self.contradiction: str | None = None

    def mark(self, candidate: str, verdict: Verdict) -> None:
        """Record a verdict; one that contradicts the others ends the search.

        Contradictions are an answer, not an error: the kernel list does not
        behave monotonically (a flaky reproducer, or the change comes and goes
        between releases), and the report must say which two kernels disagree.
        """
        i = self.items.index(candidate)
        self.marks[i] = verdict
        if verdict is Verdict.SKIP or self.contradiction is not None:
            return
        if verdict is self.terms.old_verdict:
            if i >= self.hi:
                self._contradict(newer=i, older=self.hi)
            elif i > self.lo:
                self.lo = i
        elif i <= self.lo:
            self._contradict(newer=self.lo, older=i)
        elif i < self.hi:
            self.hi = i

    def _contradict(self, newer: int, older: int) -> None:
        old, new = self.terms.old, self.terms.new
        if newer == older:
            self.contradiction = (f"inconsistent verdicts: {self.items[newer]} is both {old} "
                                  f"and {new}")
        else:
            self.contradiction = (f"inconsistent verdicts: {self.items[newer]} is {old} but the "
                                  f"older {self.items[older]} is {new}")

    def _open(self) -> list[int]:
        return [i for i in range(self.lo + 1, self.hi) if self.marks.get(i) is not Verdict.SKIP]

    def next(self) -> str | None:
        """The untested kernel that halves the untested ones plus the known new one.

        Halving by position would count skipped kernels, which no verdict can
        split any more, and waste steps after a skip.
        """
        open_ = self._open()
        if not open_ or self.contradiction is not None:
            return None
        pool = [*open_, self.hi]
        return self.items[pool[len(pool) // 2 - 1]]

    def steps_left(self) -> int:
        if self.contradiction is not None:
            return 0
        n = len(self._open())
        return max(0, n.bit_length())

    def result(self) -> StageResult:
        if self.contradiction is not None:
            return StageResult(inconsistent=True, note=self.contradiction)
        if self.hi == self.lo + 1:
            return StageResult(first=self.items[self.hi], last_old=self.items[self.lo])
        cands = self.items[self.lo + 1:self.hi + 1]
        return StageResult(candidates=cands, last_old=self.items[self.lo],
                           note="only skipped kernels are left between the last "
                                f"{self.terms.old} and the first {self.terms.new} one")
