"""git bisect over commits, driven in a worktree (``--no-checkout``).

git itself decides when the bisection is over, which merge bases must be
tested first and what a bad merge base means, so the log is a real,
replayable ``git bisect log`` and the answers are git's; we only choose which
commit to test when git leaves the choice open (see :meth:`GitBisection.next`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import UserError
from ..git import git
from ..outcomes import StageResult, Terms
from ..verdict import Verdict
from . import multisect

_UNTRANSLATED = {"LC_ALL": "C"}  # gettext ignores LANGUAGE in the C locale
_SHA = r"[0-9a-f]{40}(?:[0-9a-f]{24})?"  # SHA-1 or SHA-256 object names
_FIRST = re.compile(rf"^({_SHA}) is the first (\S+) commit", re.M)
_ONLY_SKIPPED = "only 'skip'ped commits left"
_SKIP_LIST = re.compile(rf"^({_SHA})$", re.M)
#: git's two-line verdict on a merge base that is "new" (it then refuses to go on)
_BAD_MERGE_BASE = re.compile(rf"^(The merge base {_SHA} is \S+)\.\n(.+?)\.?$", re.M)
_MUST_TEST = "a merge base must be tested"
_SKIPPED_MERGE_BASE = re.compile(
    rf"So we cannot be sure the first \S+ commit is between ({_SHA}) and ({_SHA})")
#: one line of ``rev-list --bisect-all``.  Refs pointing at the commit come first
#: in the parentheses: ``<sha> (tag: v6.1-rc3, refs/bisect/bad, dist=4)``; rev-list
#: has no ``--no-decorate``, and a ref name may hold commas and parentheses, so the
#: distance is the last ``dist=`` before the closing parenthesis.
_BISECT_ALL = re.compile(rf"^({_SHA}) \((?:.*, )?dist=(\d+)\)$")


def parse_bisect_all(text: str) -> list[tuple[str, int]]:
    """``(sha, dist)`` for every line of ``git rev-list --bisect-all``, decorated or not."""
    out: list[tuple[str, int]] = []
    for line in text.splitlines():
        m = _BISECT_ALL.match(line)
        if m is None:
            raise ValueError(f"unexpected 'rev-list --bisect-all' line: {line!r}")
        out.append((m.group(1), int(m.group(2))))
    return out


@dataclass(frozen=True)
class _Range:
    """Where git's bisection stands: what is left between the old commits and the new one."""

    new: str  # the current (oldest known) new commit
    olds: list[str]
    skipped: set[str]
    #: ``new --not olds`` as (sha, parents), topological order (children first)
    graph: list[tuple[str, list[str]]]

    @property
    def untested(self) -> list[str]:
        return [c for c, _ in self.graph if c != self.new and c not in self.skipped]


def read_range(run: Callable[..., proc.Completed], terms: Terms) -> _Range:
    """What git knows now (its refs/bisect/*), and the commits that are left; ``run``
    runs git in the bisection's worktree."""
    out = run("for-each-ref", "--format=%(refname) %(objectname)", "refs/bisect/").stdout
    new: list[str] = []
    olds: list[str] = []
    skipped: set[str] = set()
    for line in out.splitlines():
        ref, sha = line.split()
        if ref == f"refs/bisect/{terms.new}":
            new.append(sha)
        elif ref.startswith(f"refs/bisect/{terms.old}-"):
            olds.append(sha)
        elif ref.startswith("refs/bisect/skip-"):
            skipped.add(sha)
    if not new or not olds:
        raise RuntimeError("GitBisection: start() was not called (or the worktree's "
                           "bisection was reset)")
    out = run("rev-list", "--topo-order", "--parents", new[0], "--not", *olds).stdout
    graph = [(line.split()[0], line.split()[1:]) for line in out.splitlines()]
    return _Range(new[0], olds, skipped, graph)


def dag_weights(rng: _Range) -> tuple[dict[str, int], int, list[str]]:
    """Each untested commit's weight (how many of the commits in play — untested
    plus the current new one — are ancestors-or-self of it), the pool size, and
    the topological order (for ties)."""
    graph, untested = rng.graph, rng.untested
    index = {c: i for i, (c, _) in enumerate(graph)}
    pool = {*untested, rng.new}
    reach = [0] * len(graph)  # bit j: graph[j] is in the pool and an ancestor-or-self
    for i in range(len(graph) - 1, -1, -1):  # parents before children
        c, parents = graph[i]
        bits = 1 << i if c in pool else 0
        for p in parents:
            j = index.get(p)
            if j is not None:
                bits |= reach[j]
        reach[i] = bits
    weights = {c: reach[index[c]].bit_count() for c in untested}
    return weights, len(pool), sorted(untested, key=lambda c: index[c])


def best_exact(rng: _Range) -> str:
    """Exact halving over the DAG; ties go to the commit first in topological order,
    so the choice depends on the history's shape, not on commit ids."""
    weights, n, order = dag_weights(rng)
    rank = {c: i for i, c in enumerate(order)}
    return max(weights, key=lambda c: (min(weights[c], n - weights[c]), -rank[c]))


def best_by_git(run: Callable[..., proc.Completed], rng: _Range) -> str:
    """For very large ranges: git's distances (skipped commits counted), best first."""
    dists = parse_bisect_all(run("rev-list", "--bisect-all", rng.new, "--not",
                                 *rng.olds).stdout)
    order = {c: i for i, (c, _) in enumerate(dists)}
    open_ = [(c, d) for c, d in dists if c != rng.new and c not in rng.skipped]
    return max(open_, key=lambda cd: (cd[1], -order[cd[0]]))[0]


class GitBisection:
    """Drives ``git bisect`` in a worktree (never the user's checkout).

    ``olds`` are the known old ("good") revisions — git accepts several, and
    they need not be ancestors of ``new``: git then has the merge bases tested
    first, and :meth:`next` offers them.  A single revision may be passed as a
    plain string.
    """

    #: above this many commits in the range, candidates are weighed with git's own
    #: ``--bisect-all`` distances, which count skipped commits too; the exact count
    #: keeps one bit per commit pair (20,000 commits: 50 MB)
    exact_limit = 20_000

    def __init__(self, worktree: Path, olds: Sequence[str] | str, new: str,
                 terms: Terms | None = None) -> None:
        self.wt = worktree
        self.terms = terms or Terms()
        self.olds = [olds] if isinstance(olds, str) else list(olds)
        if not self.olds:
            raise UserError("git bisect needs at least one old revision")
        self.new_rev = new
        self._reset_state()

    def _reset_state(self) -> None:
        self._done: StageResult | None = None
        self._merge_base: str | None = None  # git asked for this merge base to be tested
        self._notes: list[str] = []  # git's warnings that qualify the answer
        self._pool: int | None = None  # untested commits + the current new one

    def _git(self, *args: str, check: bool = True) -> proc.Completed:
        # git translates what bisect prints, and we read it: untranslated, always
        return git(self.wt, *args, timeout=300, check=check, env=_UNTRANSLATED)

    def start(self) -> None:
        self._reset_state()
        self._git("bisect", "reset", check=False)
        self._git("bisect", "start", "--no-checkout", f"--term-old={self.terms.old}",
                  f"--term-new={self.terms.new}")
        self._apply(self._git("bisect", self.terms.new, self.new_rev, check=False))
        self._apply(self._git("bisect", self.terms.old, *self.olds, check=False))

    def _apply(self, r: proc.Completed) -> None:
        """Take in what git said after a verdict: over, a merge base to test, or go on."""
        out = r.stdout + r.stderr
        self._merge_base = None
        self._pool = None
        m = _SKIPPED_MERGE_BASE.search(out)
        if m:
            note = _skipped_base_note(m.group(1), m.group(2), self.terms)
            if note not in self._notes:
                self._notes.append(note)
        m = _FIRST.search(out)
        if m:
            self._done = StageResult(first=m.group(1), note="; ".join(self._notes))
            return
        if _ONLY_SKIPPED in out:
            self._done = _only_skipped(_SKIP_LIST.findall(out), self.terms, self._notes)
            return
        m = _BAD_MERGE_BASE.search(out)
        if m:
            # git's own words, one sentence: "The merge base X is bad: this means the
            # bug has been fixed between X and [Y]."
            why = m.group(2)
            self._done = StageResult(inconsistent=True,
                                     note=f"{m.group(1)}: {why[:1].lower()}{why[1:]}.")
            return
        if _MUST_TEST in out:
            # git wants this one verdict before it bisects (BISECT_HEAD is what it picked)
            self._merge_base = self._git("rev-parse", "--verify", "BISECT_HEAD").stdout.strip()
            return
        if r.returncode != 0:
            msg = out.strip().splitlines()
            raise UserError(f"git bisect refused: {msg[-1] if msg else r.returncode}")

    def next(self) -> str | None:
        """The merge base git asked for, else the untested commit that best halves the
        untested ones.

        The first new commit is one of the untested commits or the current new
        one; testing ``c`` leaves, if ``c`` is new, those that are ancestors of
        ``c`` (or ``c``), else the others.  So we pick the commit whose
        ancestor count among them is closest to half.  git's own pick counts
        skipped commits as if they could still be tested, and after a ``skip``
        it jumps away from the midpoint on purpose (its skip_away): both cost
        whole build+boot steps.  git still decides when the bisection is over.
        """
        if self._done is not None:
            return None
        if self._merge_base is not None:
            return self._merge_base
        rng = read_range(self._git, self.terms)
        untested = rng.untested
        self._pool = len(untested) + 1
        if not untested:  # git normally says so itself when the last verdict comes in
            self._done = _only_skipped([c for c, _ in rng.graph if c in rng.skipped]
                                       + [rng.new], self.terms, self._notes)
            return None
        if len(rng.graph) <= self.exact_limit:
            pick = best_exact(rng)
        else:
            pick = best_by_git(self._git, rng)
        # what git records as the commit under test (as its own checkout would): a
        # verdict on any other commit makes git re-check the merge bases, and ask
        # for a merge base below a known old one to be tested
        self._git("update-ref", "--no-deref", "BISECT_HEAD", pick)
        self._git("update-ref", "BISECT_EXPECTED_REV", pick)
        return pick

    def next_many(self, k: int) -> list[str]:
        """Up to ``k`` commits to test at once, splitting what is left into k+1 parts
        (:mod:`.multisect`); a pending merge base alone; ``[next()]`` for k = 1 or a
        range too large for exact weights.  Mark them all before asking again."""
        first = self.next()
        if first is None or k <= 1 or self._merge_base is not None:
            return [first] if first is not None else []
        rng = read_range(self._git, self.terms)
        if len(rng.graph) > self.exact_limit:
            return [first]
        weights, n, order = dag_weights(rng)
        return multisect.pick(weights, n, k, order)

    def mark(self, candidate: str, verdict: Verdict) -> None:
        self._apply(self._git("bisect", self.terms.term_for(verdict), candidate, check=False))

    def steps_left(self) -> int:
        """Verdicts still needed, this one included: one per pending merge base, then
        ⌈log2⌉ of the untested commits plus the current new one."""
        if self._done is not None:
            return 0
        if self._merge_base is not None:
            return 1 + math.ceil(math.log2(max(1, len(read_range(self._git, self.terms).graph))))
        if self._pool is None:
            self._pool = len(read_range(self._git, self.terms).untested) + 1
        return math.ceil(math.log2(self._pool))

    def result(self) -> StageResult:
        """The answer; before the end, the commits that are still left (never nothing)."""
        if self._done is not None:
            return self._done
        graph = read_range(self._git, self.terms).graph
        return StageResult(candidates=[c for c, _ in graph], note=(
            f"the bisection did not finish: the first {self.terms.new} commit is one of "
            f"these {len(graph)}"))

    def log(self) -> str:
        return self._git("bisect", "log", check=False).stdout

    def reset(self) -> None:
        self._git("bisect", "reset", check=False)


def _only_skipped(candidates: list[str], terms: Terms, notes: Sequence[str]) -> StageResult:
    """git's answer when every commit left was skipped: one of them is the first new."""
    return StageResult(candidates=candidates, note="; ".join(
        [f"only skipped commits are left: the first {terms.new} commit is one of them",
         *notes]))


def _skipped_base_note(base: str, new: str, terms: Terms) -> str:
    return (f"the merge base {base} could not be tested (skipped), so git cannot be sure "
            f"the first {terms.new} commit is between it and {new}")


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
