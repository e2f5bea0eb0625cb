"""What every search engine provides (the loop and the campaign rely on nothing else)."""

from __future__ import annotations

from typing import Protocol

from ..outcomes import StageResult, Terms
from ..verdict import Verdict


class Bisection(Protocol):
    """A search's state: which candidate to test next, and what the verdicts imply.

    ``next()`` returns None once the answer is known (or nothing testable is
    left); ``result()`` is then final.  Contradictory verdicts do not raise: the
    search ends with ``StageResult.inconsistent`` and a note saying how (a
    wrong culprit is the worst answer, an honest "inconsistent" is not).
    """

    terms: Terms

    def next(self) -> str | None: ...

    def mark(self, candidate: str, verdict: Verdict) -> None: ...

    def result(self) -> StageResult: ...

    def steps_left(self) -> int: ...
