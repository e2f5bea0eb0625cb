"""The bisection engine: the loop, its state and its output kept apart.

* A *bisection* (state) answers "what to test next" and takes verdicts:
  :class:`ListBisection` over an ordered list of prebuilt kernels,
  :class:`GitBisection` over commits, driving ``git bisect`` itself
  (``--no-checkout``, custom terms, skip) so the log is a real, replayable
  ``git bisect log``.
* The :class:`Bisector` (loop) asks the bisection for a candidate, calls a
  *tester* (build/boot/run — or a script in unit tests), records the step and
  marks the verdict.  It knows nothing about kernels or QEMU.
* A :class:`Handler` (output) receives events; the CLI prints progress lines,
  the nightly sweep logs, tests collect them.

Regression hunting (default): the old endpoint is GOOD, the new one BAD, and
the answer is the first BAD commit.  Fix hunting (``find_fix``): the old
endpoint is BAD, the new one GOOD, and the answer is the first GOOD one.
SKIP never moves a boundary; when only skipped commits remain, the result
lists them all as candidates instead of guessing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import proc
from .errors import UserError
from .verdict import Verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Terms:
    """git bisect terms: ``old`` is the state of the older endpoint."""

    old: str = "good"
    new: str = "bad"
    find_fix: bool = False

    @classmethod
    def make(cls, find_fix: bool = False, old: str | None = None,
             new: str | None = None) -> Terms:
        if find_fix:
            return cls(old or "broken", new or "fixed", True)
        return cls(old or "good", new or "bad", False)

    def term_for(self, verdict: Verdict) -> str:
        if verdict is Verdict.SKIP:
            return "skip"
        is_old = (verdict is Verdict.GOOD) != self.find_fix
        return self.old if is_old else self.new

    def verdict_for(self, term: str) -> Verdict:
        if term == "skip":
            return Verdict.SKIP
        if term not in (self.old, self.new):
            raise UserError(f"unknown bisect term {term!r} (terms: {self.old}/{self.new})")
        is_old = term == self.old
        return Verdict.GOOD if is_old != self.find_fix else Verdict.BAD

    @property
    def old_verdict(self) -> Verdict:
        return self.verdict_for(self.old)

    @property
    def new_verdict(self) -> Verdict:
        return self.verdict_for(self.new)


@dataclass
class Result:
    """The answer: one commit/kernel, or the honest list of candidates."""

    first: str | None = None  # first "new" commit/kernel (culprit or fix)
    candidates: list[str] = field(default_factory=list)
    last_old: str | None = None  # the adjacent "old" one (list bisections)
    note: str = ""

    @property
    def found(self) -> bool:
        return self.first is not None


class Bisection(Protocol):
    terms: Terms

    def next(self) -> str | None:
        """The candidate to test, or None when done."""
        ...

    def mark(self, candidate: str, verdict: Verdict) -> None: ...

    def result(self) -> Result: ...

    def steps_left(self) -> int: ...


# ------------------------------------------------------------------ list

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

    def _bounds(self) -> tuple[int, int]:
        return self.lo, self.hi

    def mark(self, candidate: str, verdict: Verdict) -> None:
        i = self.items.index(candidate)
        self.marks[i] = verdict
        if verdict is Verdict.SKIP:
            return
        if verdict is self.terms.old_verdict:
            if i > self.lo:
                self.lo = i
        elif i < self.hi:
            self.hi = i
        if self.lo >= self.hi:
            raise UserError(f"inconsistent verdicts: {self.items[self.lo]} is "
                            f"{self.terms.old} but the older {self.items[self.hi]} is "
                            f"{self.terms.new}")

    def _open(self) -> list[int]:
        return [i for i in range(self.lo + 1, self.hi) if self.marks.get(i) is not Verdict.SKIP]

    def next(self) -> str | None:
        open_ = self._open()
        if not open_:
            return None
        mid = (self.lo + self.hi) / 2
        return self.items[min(open_, key=lambda i: (abs(i - mid), i))]

    def steps_left(self) -> int:
        n = len(self._open())
        return max(0, n.bit_length())

    def result(self) -> Result:
        if self.hi == self.lo + 1:
            return Result(first=self.items[self.hi], last_old=self.items[self.lo])
        cands = self.items[self.lo + 1:self.hi + 1]
        return Result(candidates=cands, last_old=self.items[self.lo],
                      note="only skipped kernels are left between the last "
                           f"{self.terms.old} and the first {self.terms.new} one")


# ------------------------------------------------------------------ git

_FIRST = re.compile(r"^([0-9a-f]{40}) is the first (\S+) commit", re.M)
_LEFT = re.compile(r"roughly (\d+) steps?")


class GitBisection:
    """Drives ``git bisect`` in a worktree (never the user's checkout)."""

    def __init__(self, worktree: Path, old: str, new: str, terms: Terms | None = None) -> None:
        self.wt = worktree
        self.terms = terms or Terms()
        self.old_rev = old
        self.new_rev = new
        self._done: Result | None = None
        self._left = 0

    def _git(self, *args: str, check: bool = True) -> proc.Completed:
        return proc.run(["git", "-C", self.wt, *args], timeout=300, check=check)

    def start(self) -> None:
        self._git("bisect", "reset", check=False)
        self._git("bisect", "start", "--no-checkout", f"--term-old={self.terms.old}",
                  f"--term-new={self.terms.new}")
        self._apply(self._git("bisect", self.terms.new, self.new_rev, check=False))
        self._apply(self._git("bisect", self.terms.old, self.old_rev, check=False))

    def _apply(self, r: proc.Completed) -> None:
        out = r.stdout + r.stderr
        m = _FIRST.search(out)
        if m:
            self._done = Result(first=m.group(1))
            return
        if "only 'skip'ped commits left" in out:
            shas = re.findall(r"^([0-9a-f]{40})$", out, re.M)
            self._done = Result(candidates=shas, note="only skipped commits are left")
            return
        if r.returncode != 0:
            msg = out.strip().splitlines()
            hint = ""
            if "merge base" in out and "fixed" in out:
                hint = " (the bug looks fixed between them: try --find-fix)"
            raise UserError(f"git bisect refused: {msg[-1] if msg else r.returncode}{hint}")
        m2 = _LEFT.search(out)
        self._left = int(m2.group(1)) if m2 else self._left

    def _refs(self, pattern: str) -> list[str]:
        out = self._git("for-each-ref", "--format=%(objectname)", f"refs/bisect/{pattern}",
                        check=False).stdout
        return out.split()

    def next(self) -> str | None:
        """The untested commit that best halves the range.

        git's own pick after a ``skip`` jumps far from the midpoint on purpose
        (its skip_away), which costs whole build+boot steps; we take the best
        non-skipped commit from ``rev-list --bisect-all`` instead.  git still
        decides when the bisection is over, and its log stays replayable.
        """
        if self._done is not None:
            return None
        bad = self._refs(self.terms.new)
        goods = self._refs(f"{self.terms.old}-*")
        if not bad or not goods:
            return None
        skipped = set(self._refs("skip-*"))
        out = self._git("rev-list", "--bisect-all", bad[0], "--not", *goods).stdout
        dist: dict[str, int] = {}
        for line in out.splitlines():
            m = re.match(r"^([0-9a-f]{40}) \(dist=(\d+)\)", line)
            if m:
                dist[m.group(1)] = int(m.group(2))
        # ties (two commits halve the range equally well) go to the older one, by
        # position in history, so the choice does not depend on commit ids
        order = self._git("rev-list", bad[0], "--not", *goods).stdout.split()
        pos = {sha: i for i, sha in enumerate(order)}
        in_range = sorted(dist, key=lambda c: (-dist[c], -pos.get(c, 0)))
        for sha in in_range:
            if sha != bad[0] and sha not in skipped:
                return sha
        # nothing testable is left: the first new commit is one of the skipped ones or bad
        self._done = Result(candidates=[s for s in in_range if s in skipped or s == bad[0]],
                            note="only skipped commits are left")
        return None

    def mark(self, candidate: str, verdict: Verdict) -> None:
        self._apply(self._git("bisect", self.terms.term_for(verdict), candidate, check=False))

    def steps_left(self) -> int:
        return 0 if self._done is not None else self._left + 1

    def result(self) -> Result:
        return self._done or Result(note="bisection did not finish")

    def log(self) -> str:
        return self._git("bisect", "log", check=False).stdout

    def reset(self) -> None:
        self._git("bisect", "reset", check=False)


def parse_bisect_log(text: str) -> list[tuple[str, str]]:
    """``(term, sha)`` pairs from a ``git bisect log`` (start lines give endpoints too)."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("git bisect ") or line.startswith("git bisect start"):
            continue
        parts = line.split()
        if len(parts) >= 4:
            out.extend((parts[2], sha) for sha in parts[3:])
    return out


# ------------------------------------------------------------------ the loop

@dataclass
class StepOutcome:
    verdict: Verdict
    reason: str
    build_s: float = 0.0
    boot_s: float = 0.0
    test_s: float = 0.0
    total_s: float = 0.0
    cached: bool = False
    run_dir: str | None = None
    build_log: str | None = None


class Handler:
    """Progress events; the default does nothing (subclass what you need)."""

    def stage_started(self, stage: str, bisection: Bisection) -> None: ...

    def step_started(self, stage: str, index: int, candidate: str, left: int) -> None: ...

    def step_finished(self, stage: str, index: int, candidate: str,
                      outcome: StepOutcome) -> None: ...

    def stage_finished(self, stage: str, result: Result) -> None: ...

    def message(self, text: str) -> None: ...


Tester = Callable[[str, str], StepOutcome]  # (stage, candidate) -> outcome
Recorder = Callable[[str, str, StepOutcome], None]  # persist a finished step


class Bisector:
    """Runs a bisection to the end: ask, test, record, mark."""

    def __init__(self, tester: Tester, handler: Handler | None = None,
                 recorder: Recorder | None = None) -> None:
        self.tester = tester
        self.handler = handler or Handler()
        self.recorder = recorder

    def run(self, stage: str, bisection: Bisection, start_index: int = 0) -> Result:
        self.handler.stage_started(stage, bisection)
        index = start_index
        while True:
            cand = bisection.next()
            if cand is None:
                break
            index += 1
            self.handler.step_started(stage, index, cand, bisection.steps_left())
            outcome = self.tester(stage, cand)
            if self.recorder is not None:
                self.recorder(stage, cand, outcome)  # persisted before git hears of it
            bisection.mark(cand, outcome.verdict)
            self.handler.step_finished(stage, index, cand, outcome)
        result = bisection.result()
        self.handler.stage_finished(stage, result)
        return result
