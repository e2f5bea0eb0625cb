"""Bayesian noisy bisection: name the first bad commit, or say it was only a flake.

Plain bisection trusts one verdict per commit; a reproducer that triggers the bug
30 % of the time sends it down the wrong half with no way back.  This engine
keeps a posterior over N + 1 hypotheses instead -- "the first bad candidate is
i" for each of the N candidates, and "there is no culprit: the failures were
flakes" -- and updates it from every run.  It is pure: the caller gives the
candidates' order (index 0 next to the known-old end, N - 1 the known-new end,
``git rev-list`` linearised), runs what the engine asks for and reports back.

Model.  All rates are marginalised over small grids (:class:`RateGrid`), so
none needs to be known, and any can be declared with :meth:`RateGrid.point`:

* a run on a kernel at or after the culprit fails with probability p, the
  bug's trigger rate (:attr:`NoiseModel.trigger`);
* a run on a kernel before it fails with probability eps, a false alarm
  (:attr:`NoiseModel.false_fail`);
* under "flake" every kernel fails like a good one (or with
  :attr:`NoiseModel.flake_rate`): flake is "no kernel in the range is bad";
* a SKIP run (an unrelated crash) carries no information but costs time;
* a fix hunt (``find_fix``) turns the sides round: kernels before the first
  fixed commit fail with p, those at or after it with eps, and "flake" is "no
  fix in the range" (every kernel still fails with p: the new end's passes were
  luck).

Why a line is exact and fast.  With the runs summarised per candidate as
(failures, passes), the likelihood of "culprit = i" depends on i only through
the totals before and after i, which change only at tested candidates.  The
hypotheses fall into T + 1 segments between the T tested candidates, one
likelihood each, and the posterior, the information of a run and the stop rule
cost O(T x grid) instead of O(N).  The likelihood also factorises into an eps
part and a p part, so the grids cost |p| + |eps|, not |p| x |eps|.

On a DAG (``ancestors`` given), "c is bad" means "the culprit is an
ancestor-or-self of c".  Hypotheses are grouped by their signature -- the
tested commits they make bad -- which is again exact; regrouping costs O(N)
when a commit is first tested, and valuing a candidate O(|ancestors(c)|).

Action choice: see :class:`_Planner`.  Stop rule: the top hypothesis (a
commit, or flake) reaches the confidence target, or a budget runs out.
"""

from __future__ import annotations

import enum
import functools
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Literal, NamedTuple, Protocol

from ..errors import UserError
from ..verdict import Verdict

#: posterior mass below which a group is ignored when valuing actions
_LIVE = 1e-12
#: posterior mass below which a group is left out of a build plan's value
_PLAN_MASS = 1e-7
#: run counts a new build is valued for (its cost is paid once, then runs are cheap)
_BATCHES = (1, 2, 4, 8, 16, 32, 64)
#: where new candidates are looked for: P(candidate is bad) at these values
_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: prior (skips, attempts) behind a candidate's estimated SKIP rate
_SKIP_PRIOR = (0.2, 2.0)
#: leave a built kernel for a new build once its runs fall below this many times the
#: bisection's pace so far (bits learned per second), ...
_LEAVE = 2.0
#: ... provided the build's plan is worth at least this share of another run there,
_WORTH = 0.5
#: ... and the kernel has had this many runs (one left sooner is mostly come back to,
#: a boot each time)
_STAY_RUNS = 4


# ---------------------------------------------------------------- small math helpers

def _h(x: float) -> float:
    """Binary entropy in bits."""
    if x <= 0.0 or x >= 1.0:
        return 0.0
    return -x * math.log2(x) - (1.0 - x) * math.log2(1.0 - x)


def _entropy(dist: Iterable[float]) -> float:
    return -sum(q * math.log2(q) for q in dist if q > 0.0)


def _log(x: float) -> float:
    return math.log(x) if x > 0.0 else -math.inf


def _xlog(count: int, log_rate: float) -> float:
    """count x log(rate), with 0 x log(0) = 0: a rate of 0 forbids only what happened."""
    return 0.0 if count == 0 else count * log_rate


def _share(part: float, whole: float) -> float:
    """part / whole, with 0 for an empty whole (a prior may give candidates no weight)."""
    return part / whole if whole > 0.0 else 0.0


def _logsumexp(xs: Sequence[float]) -> float:
    top = max(xs)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(x - top) for x in xs))


@functools.lru_cache(maxsize=8192)
def _binom(n: int, rate: float) -> tuple[float, ...]:
    """P(k failures in n runs), k = 0..n."""
    if rate <= 0.0:
        return (1.0,) + (0.0,) * n
    if rate >= 1.0:
        return (0.0,) * n + (1.0,)
    return tuple(math.comb(n, k) * rate ** k * (1.0 - rate) ** (n - k) for k in range(n + 1))


def _mixture(weights: Sequence[float], values: Sequence[float], n: int) -> list[float]:
    dist = [0.0] * (n + 1)
    for w, v in zip(weights, values, strict=True):
        if w > 1e-7:
            for k, q in enumerate(_binom(n, v)):
                dist[k] += w * q
    return dist


# ---------------------------------------------------------------- public value types

@dataclass(frozen=True)
class RateGrid:
    """A discrete prior over an unknown probability (a trigger or a false-alarm rate).

    Marginalising over a handful of values is exact Bayes without conjugacy, and
    it keeps the extremes real possibilities: eps = 0 (a failure proves a kernel
    bad) and p = 1 (a pass proves it good) keep their full power when true.
    Weights are normalised.
    """

    values: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values or len(self.values) != len(self.weights):
            raise UserError("a rate grid needs at least one value and one weight per value")
        if any(not 0.0 <= v <= 1.0 for v in self.values) or any(w <= 0 for w in self.weights):
            raise UserError("grid rates must lie in [0, 1] and their weights be positive")
        total = sum(self.weights)
        object.__setattr__(self, "weights", tuple(w / total for w in self.weights))

    @classmethod
    def point(cls, value: float) -> RateGrid:
        """A rate the caller knows, e.g. ``point(1.0)`` for a deterministic reproducer."""
        return cls((value,), (1.0,))

    @property
    def mean(self) -> float:
        return sum(v * w for v, w in zip(self.values, self.weights, strict=True))


def _default_trigger() -> RateGrid:
    # p in 0.1, 0.15 .. 0.95, log-uniform (weight 1/p: a rate whose order of magnitude is
    # unknown), plus p = 1 with a quarter of the prior: deterministic reproducers are the
    # common case.  The 0.1 floor is what "flake" is measured against.  Less weight on low
    # p made the search over-confident on rare bugs (it believed the test cleaner than it
    # was); see bench/flaky.py.
    values = tuple(round(0.1 + 0.05 * k, 2) for k in range(18))
    scale = 0.75 / sum(1 / v for v in values)
    return RateGrid((*values, 1.0), (*(scale / v for v in values), 0.25))


def _default_false_fail() -> RateGrid:
    # eps = 0 (a signature-matched reproducer never misfires) is the common case; up to
    # 3 % is allowed for.  A wider grid makes rare bugs (p ~ 0.1) hard to tell from
    # misfires; a narrower one is over-confident when eps sits at its edge.  A
    # reproducer that misfires more often should declare it.
    return RateGrid((0.0, 0.01, 0.02, 0.03), (0.45, 0.2, 0.2, 0.15))


@dataclass(frozen=True)
class NoiseModel:
    """How runs fail: p on bad kernels, eps on good ones, and the prior of "flake"."""

    trigger: RateGrid = field(default_factory=_default_trigger)
    false_fail: RateGrid = field(default_factory=_default_false_fail)
    flake_prior: float = 0.05
    #: P(fail) of every kernel under "flake"; None: as the old end's kernels fail (a
    #: regression hunt: eps, good kernels; a fix hunt: p, still broken)
    flake_rate: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.flake_prior < 1.0:
            raise UserError("the flake prior must lie in [0, 1)")
        if self.flake_rate is not None and not 0.0 <= self.flake_rate <= 1.0:
            raise UserError("the flake rate must lie in [0, 1]")


@dataclass(frozen=True)
class Costs:
    """Seconds per build, boot and run: the caller passes what it measured."""

    build_s: float = 600.0
    boot_s: float = 5.0
    run_s: float = 10.0


@dataclass(frozen=True)
class Budget:
    """Limits that stop the search before the confidence target (None: no limit)."""

    max_builds: int | None = None
    max_runs: int | None = None
    max_seconds: float | None = None


class ActionKind(enum.Enum):
    BUILD = "build"  # never built: build, boot, run
    BOOT = "boot"  # built, its guest is not up: boot, run
    RUN = "run"  # its guest is up: run once more


@dataclass(frozen=True)
class Action:
    """What to do next: make ``candidate``'s guest run the reproducer once.

    ``gain_bits`` / ``cost_s`` is the rate the choice maximised; for a build it is
    the value of a plan of ``planned_runs`` runs (the engine re-plans after each).
    ``step_s`` is what this step alone costs (build, boot and one run, say).
    """

    candidate: int
    kind: ActionKind
    gain_bits: float
    cost_s: float
    planned_runs: int = 1
    step_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.gain_bits / self.cost_s if self.cost_s > 0 else math.inf


class StopReason(enum.Enum):
    CONFIDENT = "confident"  # the top hypothesis reached the target
    BUILDS = "builds"  # the best next step is a build, and the build budget is spent
    RUNS = "runs"  # the run budget is spent
    SECONDS = "seconds"  # the time budget is spent (or the next step would overrun it)
    EXHAUSTED = "exhausted"  # nothing testable is left that could still teach anything
    #: the runs are impossible under the noise model (e.g. a declared p = 1 and a pass
    #: on a kernel that failed before): widen the grids
    INCONSISTENT = "inconsistent"


@dataclass(frozen=True)
class Hypothesis:
    """One answer and its posterior probability; ``candidate`` None is "flake"."""

    candidate: int | None
    probability: float
    #: posterior mean trigger rate given this answer (the flake rate for "flake")
    rate: float

    @property
    def is_flake(self) -> bool:
        return self.candidate is None


@dataclass(frozen=True)
class BayesResult:
    """Where the search stands: the top hypotheses, why it stopped, what it spent."""

    stopped: StopReason | None  # None: still searching
    top: tuple[Hypothesis, ...]
    builds: int
    boots: int
    runs: int
    skips: int
    seconds: float

    @property
    def answer(self) -> Hypothesis:
        return self.top[0]

    @property
    def confidence(self) -> float:
        return self.top[0].probability

    @property
    def culprit(self) -> int | None:
        return self.top[0].candidate


class Mark(NamedTuple):
    """One ``git bisect`` line of the answer: the caller writes ``git bisect <term> <sha>``.

    "good" is git's old side, "bad" its new side (a fix hunt's broken and fixed)."""

    candidate: int
    term: Literal["good", "bad"]


# ---------------------------------------------------------------- the posterior

@dataclass(frozen=True)
class _Table:
    """A grid's logs, computed once: a posterior update is a few sums over them."""

    values: tuple[float, ...]
    log_w: tuple[float, ...]
    log_v: tuple[float, ...]
    log_1v: tuple[float, ...]

    @classmethod
    def of(cls, grid: RateGrid) -> _Table:
        return cls(grid.values, tuple(math.log(w) for w in grid.weights),
                   tuple(_log(v) for v in grid.values), tuple(_log(1 - v) for v in grid.values))

    def fit(self, fails: int, passes: int) -> tuple[float, list[float]]:
        """log marginal likelihood of (fails, passes), and the grid's posterior weights."""
        terms = [lw + _xlog(fails, lv) + _xlog(passes, l1)
                 for lw, lv, l1 in zip(self.log_w, self.log_v, self.log_1v, strict=True)]
        total = _logsumexp(terms)
        if total == -math.inf:
            return total, [0.0] * len(terms)
        return total, [math.exp(t - total) for t in terms]


@dataclass(frozen=True)
class _Group:
    """Hypotheses that share one likelihood: a segment of a line, or a DAG signature."""

    prior: float  # their total prior mass
    old_fails: int  # failures and passes on the tested kernels on the old side under them
    old_passes: int
    flake: bool = False


class _GroupPost:
    """A group's posterior mass, and given the group, the failure rates of the two sides.

    "new" is the side at/after the first new commit (a regression hunt: bad kernels,
    failing with p; a fix hunt: fixed kernels, failing with eps), "old" the side before.
    """

    def __init__(self, mass: float, new_w: list[float], old_w: list[float],
                 new: _Table, old: _Table, find_fix: bool) -> None:
        self.mass = mass
        self.new_w, self.old_w, self._new, self._old = new_w, old_w, new, old
        self.new_mean = sum(w * v for w, v in zip(new_w, new.values, strict=True))
        self.old_mean = sum(w * v for w, v in zip(old_w, old.values, strict=True))
        #: one run's outcome entropy on a new-side (old-side) kernel given this group
        self.new_h, self.old_h = _h(self.new_mean), _h(self.old_mean)
        #: the bug's trigger rate given this group: where the bug is, the old or new side
        self.trigger = self.old_mean if find_fix else self.new_mean
        self._dists: dict[tuple[bool, int], tuple[list[float], float]] = {}

    def dist(self, new: bool, n: int) -> tuple[list[float], float]:
        """P(k failures in n runs) on a new-side (or old-side) kernel given this group,
        and its entropy."""
        key = (new, n)
        if key not in self._dists:
            d = (_mixture(self.new_w, self._new.values, n) if new
                 else _mixture(self.old_w, self._old.values, n))
            self._dists[key] = (d, _entropy(d))
        return self._dists[key]


class _Rates:
    """The noise model as log tables, and the posterior of a list of groups under it.

    A regression hunt: the old side is good (fails with eps), the new side bad (p).
    A fix hunt turns that round: the old side is broken (p), the new side fixed (eps).
    "Flake" -- no first new commit in the range -- makes every kernel fail like the
    old side (or with the model's ``flake_rate``).
    """

    def __init__(self, model: NoiseModel, find_fix: bool = False) -> None:
        p, e = _Table.of(model.trigger), _Table.of(model.false_fail)
        self.find_fix = find_fix
        self.old, self.new = (p, e) if find_fix else (e, p)
        self.flake = (self.old if model.flake_rate is None
                      else _Table.of(RateGrid.point(model.flake_rate)))

    def posterior(self, groups: Sequence[_Group], fails: int,
                  passes: int) -> list[_GroupPost] | None:
        """Normalised group posteriors; None when every hypothesis is impossible."""
        logs: list[float] = []
        fits: list[tuple[list[float], list[float]]] = []
        for g in groups:
            if g.flake:
                lo, ow = self.flake.fit(fails, passes)
                ln, nw = 0.0, [0.0] * len(self.new.values)
            else:
                lo, ow = self.old.fit(g.old_fails, g.old_passes)
                ln, nw = self.new.fit(fails - g.old_fails, passes - g.old_passes)
            logs.append(_log(g.prior) + lo + ln)
            fits.append((nw, ow))
        total = _logsumexp(logs)
        if total == -math.inf:
            return None
        return [_GroupPost(math.exp(lg - total), nw, ow, self.new,
                           self.flake if g.flake else self.old, self.find_fix)
                for g, lg, (nw, ow) in zip(groups, logs, fits, strict=True)]


# ---------------------------------------------------------------- evidence and hypothesis spaces

class _Evidence:
    """Runs summarised per candidate: what the likelihood needs, and nothing else."""

    def __init__(self) -> None:
        self.fails: dict[int, int] = {}
        self.passes: dict[int, int] = {}
        self.skips: dict[int, int] = {}
        self.tested: list[int] = []  # sorted; candidates with at least one pass or fail
        self.total_fails = 0
        self.total_passes = 0

    def add(self, c: int, verdict: Verdict) -> bool:
        """Record a run; True when it is the first informative run on ``c``."""
        if verdict is Verdict.SKIP:
            self.skips[c] = self.skips.get(c, 0) + 1
            return False
        first = c not in self.fails
        if first:
            self.fails[c] = self.passes[c] = 0
            insort(self.tested, c)
        if verdict is Verdict.BAD:
            self.fails[c] += 1
            self.total_fails += 1
        else:
            self.passes[c] += 1
            self.total_passes += 1
        return first

    def runs(self, c: int) -> int:
        """Informative runs on ``c`` so far."""
        return self.fails.get(c, 0) + self.passes.get(c, 0)

    def skip_rate(self, c: int | None) -> float:
        """Estimated share of runs on ``c`` (None: on any kernel) that end in SKIP."""
        if c is None:
            skips = sum(self.skips.values())
            attempts = skips + self.total_fails + self.total_passes
        else:
            skips = self.skips.get(c, 0)
            attempts = skips + self.fails.get(c, 0) + self.passes.get(c, 0)
        return (skips + _SKIP_PRIOR[0]) / (attempts + _SKIP_PRIOR[1])


class _Space(Protocol):
    """How hypotheses group and how a candidate splits them (a line, or a DAG)."""

    n: int
    groups: list[_Group]

    def regroup(self, ev: _Evidence) -> None: ...

    def where(self, c: int) -> tuple[int, float]: ...

    def fractions(self, c: int, live: Sequence[int]) -> list[float]: ...

    def best(self, k: int) -> tuple[int | None, float]: ...

    def picks(self, posts: Sequence[_GroupPost], quantiles: Sequence[float]) -> list[int]: ...

    def parents(self, c: int) -> list[int]: ...

    def binned(self, posts: Sequence[_GroupPost], starts: Sequence[int]) -> list[float]: ...

    def sizes(self) -> list[int]: ...


def _bits(posts: Sequence[_GroupPost], sizes: Sequence[int]) -> float:
    """Posterior entropy in bits, a group's mass taken as spread evenly over its members
    (exact under a uniform prior; the planner uses it only to measure its pace)."""
    out = 0.0
    for post, size in zip(posts, sizes, strict=True):
        if post.mass > 0.0:
            out += post.mass * (math.log2(size) - math.log2(post.mass))
    return out


class _Prior:
    """The culprit prior over the candidates: range masses, range argmax, inverse CDF.

    Uniform priors (the usual case) are arithmetic; a given one keeps prefix sums
    and a sparse table, so no query walks the N candidates.
    """

    def __init__(self, n: int, weights: Sequence[float] | None, mass: float) -> None:
        self.n, self.mass = n, mass
        self.w: list[float] | None = None
        if weights is not None:
            if len(weights) != n or any(x < 0 for x in weights) or sum(weights) <= 0:
                raise UserError("the prior needs one non-negative weight per candidate")
            total = sum(weights)
            self.w = [x * mass / total for x in weights]
            self.cum = [0.0, *accumulate(self.w)]
            self._argmax = self._sparse_table(self.w)

    @staticmethod
    def _sparse_table(w: list[float]) -> list[list[int]]:
        table, span = [list(range(len(w)))], 1
        while 2 * span <= len(w):
            prev = table[-1]
            table.append([a if w[a] >= w[b] else b
                          for a, b in zip(prev, prev[span:], strict=False)])
            span *= 2
        return table

    def point(self, i: int) -> float:
        return self.mass / self.n if self.w is None else self.w[i]

    def range(self, s: int, e: int) -> float:
        """Prior mass of candidates s..e (inclusive; empty when s > e)."""
        if s > e:
            return 0.0
        return self.mass * (e - s + 1) / self.n if self.w is None else self.cum[e + 1] - self.cum[s]

    def argmax(self, s: int, e: int) -> int:
        """The likeliest candidate in s..e (the last one, under a uniform prior)."""
        if self.w is None:
            return e
        level = (e - s + 1).bit_length() - 1
        a, b = self._argmax[level][s], self._argmax[level][e - (1 << level) + 1]
        return a if self.w[a] >= self.w[b] else b

    def at(self, s: int, e: int, share: float) -> int:
        """The first c in s..e whose mass from s reaches ``share`` of the mass of s..e."""
        if self.w is None:
            return min(e, s + max(0, math.ceil(share * (e - s + 1)) - 1))
        goal = self.cum[s] + share * (self.cum[e + 1] - self.cum[s])
        return min(e, max(s, bisect_left(self.cum, goal, s + 1, e + 2) - 1))


class _Line:
    """Hypotheses on a line: the segments between tested candidates, then "flake"."""

    def __init__(self, prior: _Prior, flake_prior: float) -> None:
        self.prior, self.flake_prior, self.n = prior, flake_prior, prior.n
        self.spans: list[tuple[int, int]] = [(0, self.n - 1)]
        self.groups: list[_Group] = [_Group(prior.mass, 0, 0), _Group(flake_prior, 0, 0, True)]

    def regroup(self, ev: _Evidence) -> None:
        spans: list[tuple[int, int]] = []
        groups: list[_Group] = []
        start = a = b = 0
        for c in [*ev.tested, self.n - 1]:
            if c < start:  # the last candidate was tested: no untested tail
                break
            spans.append((start, c))
            groups.append(_Group(self.prior.range(start, c), a, b))
            a, b, start = a + ev.fails.get(c, 0), b + ev.passes.get(c, 0), c + 1
        groups.append(_Group(self.flake_prior, a, b, flake=True))
        self.spans, self.groups = spans, groups

    def fractions(self, c: int, live: Sequence[int]) -> list[float]:
        out = []
        for k in live:
            if k == len(self.spans):  # flake: no candidate is bad
                out.append(0.0)
                continue
            s, e = self.spans[k]
            out.append(1.0 if e <= c else 0.0 if s > c
                       else _share(self.prior.range(s, c), self.prior.range(s, e)))
        return out

    def where(self, c: int) -> tuple[int, float]:
        k = bisect_left(self.spans, (c + 1, -1)) - 1
        s, e = self.spans[k]
        return k, _share(self.prior.point(c), self.prior.range(s, e))

    def best(self, k: int) -> tuple[int | None, float]:
        if k == len(self.spans):
            return None, 1.0
        s, e = self.spans[k]
        i = self.prior.argmax(s, e)
        return i, _share(self.prior.point(i), self.prior.range(s, e))

    def picks(self, posts: Sequence[_GroupPost], quantiles: Sequence[float]) -> list[int]:
        """Candidates where P(bad) crosses each quantile (untested ones, or tested ends)."""
        out: list[int] = []
        cum, qs = 0.0, list(quantiles)
        for (s, e), post in zip(self.spans, posts, strict=False):
            while qs and cum + post.mass >= qs[0] and post.mass > 0:
                c = self.prior.at(s, e, (qs.pop(0) - cum) / post.mass)
                out.append(c - 1 if c == e and c > s and e != self.n - 1 else c)
            cum += post.mass
        return out

    def parents(self, c: int) -> list[int]:
        return [c - 1] if c > 0 else []

    def sizes(self) -> list[int]:
        return [*(e - s + 1 for s, e in self.spans), 1]

    def binned(self, posts: Sequence[_GroupPost], starts: Sequence[int]) -> list[float]:
        """Mass per stretch ``starts[j] .. starts[j + 1] - 1``: O(segments + stretches)."""
        out = [0.0] * len(starts)
        ends = [*starts[1:], self.n]
        j = 0
        for (s, e), post in zip(self.spans, posts, strict=False):  # flake is not on the line
            whole = self.prior.range(s, e)
            while ends[j] <= s:
                j += 1
            k = j
            while k < len(starts) and starts[k] <= e:
                part = self.prior.range(max(s, starts[k]), min(e, ends[k] - 1))
                out[k] += post.mass * _share(part, whole)
                k += 1
        return out


class _Dag:
    """Hypotheses on a DAG, grouped by signature: the tested commits they make bad.

    ``ancestors(c)`` is c's ancestors-or-self among the candidates (indices in a
    topological order, oldest first).  New candidates are looked for at posterior
    quantiles along that order -- a heuristic for *where* to look; their values are
    computed exactly with the ancestor sets.
    """

    def __init__(self, prior: _Prior, flake_prior: float,
                 ancestors: Callable[[int], frozenset[int]]) -> None:
        self.prior, self.flake_prior, self.n = prior, flake_prior, prior.n
        # built candidates are asked for every step, new picks a few times: a bounded
        # cache keeps those without holding thousands of large sets on a big DAG
        self._ancestors = functools.lru_cache(maxsize=512)(ancestors)
        self.gid = [0] * self.n
        self.sigs: list[frozenset[int]] = [frozenset()]
        self.members: list[list[int]] = [list(range(self.n))]
        self.groups: list[_Group] = [_Group(prior.mass, 0, 0), _Group(flake_prior, 0, 0, True)]
        self._known: set[int] = set()

    def anc(self, c: int) -> frozenset[int]:
        return self._ancestors(c)

    def regroup(self, ev: _Evidence) -> None:
        for c in ev.tested:
            if c not in self._known:
                self._known.add(c)
                self._split(c)
        groups = []
        for sig, members in zip(self.sigs, self.members, strict=True):
            a = ev.total_fails - sum(ev.fails[c] for c in sig)
            b = ev.total_passes - sum(ev.passes[c] for c in sig)
            groups.append(_Group(sum(self.prior.point(h) for h in members), a, b))
        groups.append(_Group(self.flake_prior, ev.total_fails, ev.total_passes, flake=True))
        self.groups = groups

    def _split(self, c: int) -> None:
        index = {sig: k for k, sig in enumerate(self.sigs)}
        for h in self.anc(c):
            sig = self.sigs[self.gid[h]] | {c}
            if sig not in index:
                index[sig] = len(self.sigs)
                self.sigs.append(sig)
            self.gid[h] = index[sig]
        buckets: list[list[int]] = [[] for _ in self.sigs]
        for h, g in enumerate(self.gid):
            buckets[g].append(h)
        keep = [k for k, b in enumerate(buckets) if b]
        renumber = {k: j for j, k in enumerate(keep)}
        self.sigs = [self.sigs[k] for k in keep]
        self.members = [buckets[k] for k in keep]
        self.gid = [renumber[g] for g in self.gid]

    def fractions(self, c: int, live: Sequence[int]) -> list[float]:
        bad = [0.0] * len(self.groups)
        for h in self.anc(c):
            bad[self.gid[h]] += self.prior.point(h)
        return [_share(bad[k], self.groups[k].prior) for k in live]

    def where(self, c: int) -> tuple[int, float]:
        k = self.gid[c]
        return k, _share(self.prior.point(c), self.groups[k].prior)

    def best(self, k: int) -> tuple[int | None, float]:
        if k == len(self.members):
            return None, 1.0
        i = max(reversed(self.members[k]), key=self.prior.point)
        return i, _share(self.prior.point(i), self.groups[k].prior)

    def picks(self, posts: Sequence[_GroupPost], quantiles: Sequence[float]) -> list[int]:
        out: list[int] = []
        cum, qs = 0.0, list(quantiles)
        for h in range(self.n):
            k = self.gid[h]
            cum += posts[k].mass * _share(self.prior.point(h), self.groups[k].prior)
            while qs and cum >= qs[0]:
                qs.pop(0)
                out.append(h)
        return out

    def parents(self, c: int) -> list[int]:
        """c's parents: the ancestors not already an ancestor of another ancestor."""
        out: list[int] = []
        covered: set[int] = set()
        for q in sorted(self.anc(c) - {c}, reverse=True):
            if q not in covered:
                out.append(q)
                covered |= self.anc(q)
        return sorted(out)

    def sizes(self) -> list[int]:
        return [*(len(m) for m in self.members), 1]

    def binned(self, posts: Sequence[_GroupPost], starts: Sequence[int]) -> list[float]:
        """Mass per stretch of the topological order: O(N), like regrouping."""
        out = [0.0] * len(starts)
        for h in range(self.n):
            k = self.gid[h]
            out[bisect_right(starts, h) - 1] += (
                posts[k].mass * _share(self.prior.point(h), self.groups[k].prior))
        return out


# ---------------------------------------------------------------- action choice

def _gain1(posts: Sequence[_GroupPost], live: Sequence[int], fr: Sequence[float]) -> float:
    """Expected bits removed from the posterior by one run on a candidate.

    I(Y; H) = h(P(fail)) - sum_h P(h) h(P(fail | h)); within a group, the bad share
    ``fr`` fails with the group's mean p and the rest with its mean eps.
    """
    p_fail = cond = 0.0
    for k, f in zip(live, fr, strict=True):
        g = posts[k]
        p_fail += g.mass * (g.old_mean + f * (g.new_mean - g.old_mean))
        cond += g.mass * (g.old_h + f * (g.new_h - g.old_h))
    return max(0.0, _h(p_fail) - cond)


def _gain_n(posts: Sequence[_GroupPost], live: Sequence[int], fr: Sequence[float],
            n: int) -> float:
    """Expected bits removed by n runs on one candidate (the failure count is sufficient)."""
    total = [0.0] * (n + 1)
    cond = 0.0
    for k, f in zip(live, fr, strict=True):
        g = posts[k]
        for new, share in ((True, f), (False, 1.0 - f)):
            if share <= 0.0:
                continue
            dist, ent = g.dist(new, n)
            w = g.mass * share
            cond += w * ent
            for x, q in enumerate(dist):
                total[x] += w * q
    return max(0.0, _entropy(total) - cond)


class _Planner:
    """Chooses the action with the most expected information per expected second.

    Candidates: every built one (a run if its guest is up, else a boot and a run),
    new ones where P(bad) crosses the :data:`_QUANTILES` of the posterior, and the
    known-new end (which alone tells a culprit from a flake).  A new build is
    valued as its best plan of n runs (:data:`_BATCHES`), since one run could never
    repay 600 s; plans are only computed when even a perfect build could beat the
    best cheap action, and only for the two new candidates whose first run is worth
    most.  A candidate's SKIP rate inflates its cost per informative run.

    When to leave a built kernel is Charnov's marginal value theorem: a forager
    leaves a patch once its yield drops below the average yield of the whole trip,
    travel included.  Comparing a run only with the next build's plan undervalues
    the build (its later cheap revisits are not counted), so the search kept running
    good kernels for bits it would have got cheaper elsewhere -- and built as often
    anyway.  ``pace`` is the bisection's average so far (bits learned per second);
    below :data:`_LEAVE` times it, a build worth :data:`_WORTH` of a run is taken
    (once the kernel has had :data:`_STAY_RUNS` runs).
    Measured in bench/flaky.py: 10-15 % fewer runs at the same builds and wall time.
    """

    def __init__(self, costs: Costs) -> None:
        self.costs = costs

    def run_cost(self, skip: float) -> float:
        """Seconds per informative run: SKIPs are re-run, and a crash needs a new boot."""
        c = self.costs
        return (c.run_s + skip * c.boot_s) / max(1e-6, 1.0 - skip)

    def choose(self, posts: Sequence[_GroupPost], space: _Space, ev: _Evidence,
               built: set[int], up: int | None, blocked: set[int],
               pace: float) -> Action | None:
        live = [k for k, g in enumerate(posts) if g.mass > _LIVE]
        cands = set(space.picks(posts, _QUANTILES)) | built
        cands.add(space.n - 1)
        best: Action | None = None
        new: list[tuple[float, int, list[float]]] = []
        for c in sorted(cands - blocked):
            fr = space.fractions(c, live)
            g1 = _gain1(posts, live, fr)
            if c not in built:
                new.append((g1, c, fr))
                continue
            kind = ActionKind.RUN if c == up else ActionKind.BOOT
            boot = 0.0 if c == up else self.costs.boot_s
            cost = boot + self.run_cost(ev.skip_rate(c))
            best = _better(best, Action(c, kind, g1, cost, step_s=boot + self.costs.run_s))
        return self._builds(posts, live, new, ev, best, pace)

    def _builds(self, posts: Sequence[_GroupPost], live: list[int],
                new: list[tuple[float, int, list[float]]], ev: _Evidence,
                stay: Action | None, pace: float) -> Action | None:
        overhead = self.costs.build_s + self.costs.boot_s
        run = self.run_cost(ev.skip_rate(None))
        bound = max((min(1.0, _h(_bad_share(posts, live, fr)) + 0.05) for _, _, fr in new),
                    default=0.0) / (overhead + run)
        leave = (stay is not None and stay.rate < _LEAVE * pace
                 and ev.runs(stay.candidate) >= _STAY_RUNS)
        if stay is not None and stay.rate >= bound and not leave:
            return stay
        best: Action | None = None
        step = overhead + self.costs.run_s
        # a plan is an estimate: the groups that hold real mass are enough for it
        keep = [j for j, k in enumerate(live) if posts[k].mass > _PLAN_MASS]
        live_n = [live[j] for j in keep]
        for g1, c, fr in sorted(new, reverse=True)[:2]:
            fr_n = [fr[j] for j in keep]
            last = 0.0
            for n in _BATCHES:  # a plan's rate rises while runs repay the build, then falls
                gain = g1 if n == 1 else _gain_n(posts, live_n, fr_n, n)
                plan = Action(c, ActionKind.BUILD, gain, overhead + n * run, n, step)
                if plan.rate < last:
                    break
                best, last = _better(best, plan), plan.rate
        if stay is None or best is None:
            return stay or best
        return best if leave and best.rate >= _WORTH * stay.rate else _better(stay, best)


def _bad_share(posts: Sequence[_GroupPost], live: Sequence[int], fr: Sequence[float]) -> float:
    return sum(posts[k].mass * f for k, f in zip(live, fr, strict=True))


def _better(a: Action | None, b: Action) -> Action:
    return b if a is None or b.rate > a.rate else a


# ---------------------------------------------------------------- the engine

@dataclass
class _Ledger:
    """What the caller reported: kernels built, the guest that is up, what it cost."""

    built: set[int] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)  # do not build or boot: untestable
    up: int | None = None
    builds: int = 0
    boots: int = 0
    runs: int = 0
    skips: int = 0
    seconds: float = 0.0
    prior_bits: float = 0.0  # the prior's entropy

    def pace(self, bits: float) -> float:
        """Bits learned per second so far, given the posterior's entropy now."""
        return max(0.0, self.prior_bits - bits) / self.seconds if self.seconds > 0 else 0.0

    def build(self, c: int, seconds: float) -> None:
        self.built.add(c)
        self.builds += 1
        self.seconds += seconds

    def boot(self, c: int, seconds: float) -> None:
        self.built.add(c)
        self.up = c
        self.boots += 1
        self.seconds += seconds

    def run(self, c: int, verdict: Verdict, seconds: float) -> None:
        self.built.add(c)
        self.runs += 1
        self.skips += verdict is Verdict.SKIP
        self.seconds += seconds

    def spent(self, b: Budget) -> StopReason | None:
        """The budget that is used up, if any."""
        if b.max_runs is not None and self.runs >= b.max_runs:
            return StopReason.RUNS
        if b.max_seconds is not None and self.seconds >= b.max_seconds:
            return StopReason.SECONDS
        return None

    def refuse(self, action: Action | None, b: Budget) -> StopReason | None:
        """Why the best next step is not worth taking or not allowed, if it is not."""
        if action is None or action.gain_bits < 1e-9:
            return StopReason.EXHAUSTED
        if (action.kind is ActionKind.BUILD and b.max_builds is not None
                and self.builds >= b.max_builds):
            return StopReason.BUILDS
        if b.max_seconds is not None and self.seconds + action.step_s > b.max_seconds:
            return StopReason.SECONDS
        return None


class BayesSearch:
    """Noisy bisection over ``n`` ordered candidates (see the module docstring).

    The caller loops: ``a = next_action()``; None means stop (see :meth:`result`);
    otherwise build ``a.candidate`` if ``a.kind`` is BUILD (:meth:`mark_built`),
    boot it unless it is up (:meth:`mark_booted`), run the reproducer once and
    :meth:`record` the verdict (BAD = the bug triggered); after a crash that took
    the guest down, :meth:`mark_guest_down`.  Durations default to ``costs``.

    ``find_fix`` hunts the first *fixed* commit: the bug (rate p) is on the old side
    and the new side fails only with eps; verdicts stay "the bug showed" (BAD) or
    not, and "flake" becomes "no fix in the range: the new end's passes were luck".
    """

    def __init__(self, n: int, *, model: NoiseModel | None = None, costs: Costs | None = None,
                 budget: Budget | None = None, target: float = 0.95,
                 prior: Sequence[float] | None = None,
                 ancestors: Callable[[int], frozenset[int]] | None = None,
                 find_fix: bool = False) -> None:
        self.n, self.target = n, target
        self.model, self.costs = model or NoiseModel(), costs or Costs()
        self.budget = budget or Budget()
        self._space = _space_of(n, target, prior, self.model.flake_prior, ancestors)
        self.find_fix = find_fix
        self._rates = _Rates(self.model, find_fix)
        self._ev = _Evidence()
        self._ledger = _Ledger()
        self._planner = _Planner(self.costs)
        posts = self._rates.posterior(self._space.groups, 0, 0)
        if posts is None:
            raise UserError("the prior leaves no hypothesis possible")
        self._posts = posts
        self._ledger.prior_bits = _bits(posts, self._space.sizes())
        #: set by a run the model calls impossible; the posterior stays as it was before
        self._inconsistent = False
        self._stopped: StopReason | None = None

    # -- what the caller tells the engine
    def mark_built(self, candidate: int, seconds: float | None = None) -> None:
        self._check(candidate)
        self._ledger.build(candidate, self.costs.build_s if seconds is None else seconds)

    def mark_untestable(self, candidate: int) -> None:
        """It does not build or boot: never proposed again (``git bisect skip``)."""
        self._check(candidate)
        self._ledger.blocked.add(candidate)
        if self._ledger.up == candidate:
            self._ledger.up = None

    def mark_booted(self, candidate: int, seconds: float | None = None) -> None:
        self._check(candidate)
        self._ledger.boot(candidate, self.costs.boot_s if seconds is None else seconds)

    def mark_guest_down(self) -> None:
        self._ledger.up = None

    def use_costs(self, costs: Costs) -> None:
        """Weigh actions by these costs from now on: a caller that measures its builds,
        boots and runs as it goes tells the engine what this machine takes."""
        self.costs = costs
        self._planner.costs = costs

    @property
    def guest_up(self) -> int | None:
        return self._ledger.up

    def record(self, candidate: int, verdict: Verdict, seconds: float | None = None) -> None:
        """One run's verdict; BAD means the bug triggered, SKIP costs time only.

        A run implies the kernel exists (a prebuilt one needs no :meth:`mark_built`).
        A run the model calls impossible (e.g. a pass on a kernel that failed, under a
        declared p = 1 and eps = 0) stops the search as INCONSISTENT, with the
        posterior as it stood before.
        """
        self._check(candidate)
        self._ledger.run(candidate, verdict, self.costs.run_s if seconds is None else seconds)
        if verdict is Verdict.SKIP:
            return
        self._ev.add(candidate, verdict)
        self._space.regroup(self._ev)
        posts = self._rates.posterior(self._space.groups, self._ev.total_fails,
                                      self._ev.total_passes)
        if posts is None:
            self._inconsistent = True
        elif not self._inconsistent:
            self._posts = posts

    # -- what the engine answers
    def next_action(self) -> Action | None:
        """The best next step, or None once the search stops (:attr:`result`.stopped)."""
        led = self._ledger
        if self._inconsistent:
            self._stopped = StopReason.INCONSISTENT
        elif self.top(1)[0].probability >= self.target:
            self._stopped = StopReason.CONFIDENT
        else:
            self._stopped = led.spent(self.budget)
        if self._stopped is not None:
            return None
        pace = led.pace(_bits(self._posts, self._space.sizes()))
        action = self._planner.choose(self._posts, self._space, self._ev, led.built, led.up,
                                      led.blocked, pace)
        self._stopped = led.refuse(action, self.budget)
        return None if self._stopped is not None else action

    def probability(self, candidate: int | None) -> float:
        """Posterior probability that ``candidate`` is the first bad one (None: flake)."""
        if candidate is None:
            return self._posts[-1].mass
        self._check(candidate)
        k, share = self._space.where(candidate)
        return self._posts[k].mass * share

    def mass_by_range(self, starts: Sequence[int]) -> list[float]:
        """Posterior mass of each stretch ``starts[j] .. starts[j + 1] - 1`` of the
        candidates (the last to n - 1): the posterior, coarsened for a plot.  "Flake"
        is in none of them (see :meth:`probability`)."""
        _check_stretches(starts, self.n)
        return self._space.binned(self._posts, starts)

    def flake(self) -> Hypothesis:
        """ "No culprit: the failures were flakes" (a fix hunt: "no fix: the passes were
        luck"), with its probability."""
        post = self._posts[-1]
        return Hypothesis(None, post.mass, post.old_mean)

    def top(self, k: int = 5) -> list[Hypothesis]:
        """The k likeliest answers (one per group of equally-explained candidates)."""
        hyps = []
        for j, post in enumerate(self._posts):
            cand, share = self._space.best(j)
            rate = post.old_mean if cand is None else post.trigger
            hyps.append(Hypothesis(cand, post.mass * share, rate))
        hyps.sort(key=lambda h: -h.probability)
        return hyps[:k]

    def result(self) -> BayesResult:
        led = self._ledger
        return BayesResult(self._stopped, tuple(self.top()), led.builds, led.boots, led.runs,
                           led.skips, led.seconds)

    def answer_marks(self) -> list[Mark]:
        """The fewest ``git bisect`` marks that imply the top answer.

        A culprit: its parent(s) good and itself bad.  "Flake": the known-new end
        good -- no candidate in the range is bad.
        """
        return _marks(self.top(1)[0].candidate, self._space)

    def _check(self, candidate: int) -> None:
        if not 0 <= candidate < self.n:
            raise UserError(f"candidate {candidate} is outside 0..{self.n - 1}")


def _space_of(n: int, target: float, prior: Sequence[float] | None, flake_prior: float,
              ancestors: Callable[[int], frozenset[int]] | None) -> _Space:
    """The hypothesis space: a line, or a DAG when ``ancestors`` is given."""
    if n < 1:
        raise UserError("need at least one candidate")
    if not 0.5 <= target < 1.0:
        raise UserError("the confidence target must lie in [0.5, 1)")
    cprior = _Prior(n, prior, 1.0 - flake_prior)
    return (_Line(cprior, flake_prior) if ancestors is None
            else _Dag(cprior, flake_prior, ancestors))


def _check_stretches(starts: Sequence[int], n: int) -> None:
    if list(starts[:1]) != [0] or starts[-1] >= n or any(b <= a for a, b in pairwise(starts)):
        raise UserError("stretches must start at 0 and increase within the range")


def _marks(culprit: int | None, space: _Space) -> list[Mark]:
    """A culprit's marks: its parent(s) good, itself bad; "flake": the new end good."""
    if culprit is None:
        return [Mark(space.n - 1, "good")]
    return [*(Mark(p, "good") for p in space.parents(culprit)), Mark(culprit, "bad")]
