"""make bench-flaky: bisecting a flaky bug in simulation -- ours vs the usual policies.

One run, fixed seed.  A line of N commits; the culprit is uniform over them; a
run on a kernel at/after it fails with probability p, before it with eps; one
cell has no culprit (every failure is a flake), one injects unrelated crashes
(a share of all runs end in SKIP and take the guest down).  Policies:

* ``plain``  -- one run per commit (today's bisector);
* ``syzbot`` -- syzkaller pkg/bisect's rule (10 runs, 20 when flaky; see
  bisector/search/baselines.py);
* ``rep8``   -- 8 runs per commit, majority;
* ``git_bayesect`` -- git_bayesect's selection rule (bench/bayesect.py: rates
  unknown under Beta priors, least expected entropy, no build costs, no flake
  hypothesis), stopped at our target; N = 1,024 only (it is O(N) per run), and
  not in the no-culprit cell (it cannot answer "flake");
* ``ours``   -- :class:`bisector.search.bayes.BayesSearch` with its default
  noise model (p and eps unknown, marginalised), the cost model below, and a
  0.995 confidence target (the engine's default is 0.95; at a calibrated 0.99 a
  99 % accuracy goal would be a coin flip per cell);
* ``ours (ε declared)`` -- the same, told the cell's true eps (as a reproducer's
  ``verdict.false_alarm_rate`` tells it: 0 for a signature check a good kernel
  cannot produce), p still unknown;
* ``ours (p, ε declared)`` -- told both, as a reproducer that declares
  ``verdict.trigger_rate`` too (or a nightly sweep that measured the flake rate and
  passes it on) tells them.  In the no-culprit cell it is told p = 0.5, the rate
  the user believed.  The goals name the row each one is met by; ``ours`` stays
  the unknown case;
* ``ours-inc`` (with ``--inc``; it doubles the run time) -- the same engine told this
  project's measured costs (incremental build 10 s, boot 3 s, run 5 s): it then
  builds more and runs less.

Per cell and policy: accuracy, calibration error (|confidence - accuracy| per
confidence bin, weighted; the baselines claim 1.0), runs, builds, boots, runs
divided by the information bound log2(N)/C (C: the capacity of the test as a
binary asymmetric channel: P(fail|bad) = p, P(fail|good) = eps, SKIPs erasures),
and the expected wall time at build 600 s, boot 5 s, run 10 s.  Then the goals;
a run-count goal shows the bound beside it.

Why ``ours`` runs more than the bound: it minimises expected *cost*, and at 600 s
a build is worth 60 runs.  A tested commit says at most one bit, so about
log2(N) builds must each be settled nearly for sure, with many runs; the bound
assumes every run goes where it tells most, i.e. a new build whenever that
helps.  When to leave a built kernel follows the marginal value theorem (see
bisector/search/bayes.py, ``_Planner``): that alone took p = 0.3 from 151 to
132 runs (p unknown) and 109 to 96 (declared) at the same builds and wall time.
Not knowing p costs the rest: a pass only says "good" as far as the search is
sure p is not low, and learning p first costs as many runs as it saves (the
parent of the culprit needs ~33 passes instead of ~17).  The shape of the prior over
p is no way out: weights 1/p (the default), 1/sqrt(p) and flat give 131, 126 and 122
runs at p = 0.3 but 401, 417 and 423 at p = 0.1 (rates unknown, 200 trials each).  For comparison,
git_bayesect's own selection rule (free builds, Beta priors) needs 146 runs and
58 builds at p = 0.3 and the same 0.995 target (the git_bayesect row).  ``--inc``
shows the engine at this project's measured (incremental) costs.

Also measured and not taken (p = 0.3, eps = 0, rates unknown, 200 trials; 131.5
runs today):

* valuing a run by what it adds to the next n runs at the best other kernel (a
  two-step look-ahead that credits runs on a bad kernel for what they teach about
  p): n = 4, 8, 16 give 129.2, 134.6, 149.1.  Runs move from the parent to the bad
  side, about one for one;
* Chernoff's rule for sequential tests once the top answer holds >= 0.5 ... 0.99:
  pick the built kernel where the evidence against the other answers grows
  fastest *if the top one is true* (mass-weighted KL(top || other)), since
  entropy rewards a kernel where the top answer predicts a near-sure pass even
  when the alternative it tests holds little mass: 128.7 to 134.6;
* leaving built kernels sooner (``_LEAVE`` 20, ``_WORTH`` 0.2): 111.5 runs, but
  12.4 builds and 2.40 h instead of 2.08 h.  That is telling the engine builds are
  cheaper than the cost model says, not a better search;
* the end game alone, solved exactly: with the answer narrowed to the culprit or
  its parent, p unknown under the default prior and eps = 0, dynamic programming
  over (fails and passes on the bad side, passes on the parent) finds that from
  5 failures in 15 bad-side runs on (8 in 26), the Bayes-optimal policy runs only
  the parent, and needs 24 (21) passes at p = 0.3.  The search spends 32 there:
  at most about 8 runs per bisection are left in the end game.  The rest of the
  gap to the p-known row is on bad kernels, 36 runs against 14: a second failure
  each while eps is unknown.  Told eps, the search spends those runs on good
  kernels instead (81 against 64), a pass weighing little while p may be low.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bayesect import BayesectPolicy  # noqa: E402  (bench/, next to this file)

from bisector.search.baselines import (  # noqa: E402
    PlainPolicy,
    RepeatPolicy,
    RunPolicy,
    SyzbotPolicy,
)
from bisector.search.bayes import (  # noqa: E402
    ActionKind,
    BayesSearch,
    Budget,
    Costs,
    NoiseModel,
    RateGrid,
)
from bisector.verdict import Verdict  # noqa: E402

BUILD_S, BOOT_S, RUN_S = 600.0, 5.0, 10.0
TARGET = 0.995
MAX_RUNS = 5000  # a safety net for ours; reported when it binds
#: ours told the cell's eps (a reproducer's declared verdict.false_alarm_rate)
DECLARED = "ours (ε declared)"
#: ours told p and eps (a reproducer's verdict.trigger_rate and false_alarm_rate)
RATES = "ours (p, ε declared)"
POLICIES = ("plain", "syzbot", "rep8", "git_bayesect", "ours", DECLARED, RATES)
# --inc adds "ours-inc"
#: the policies run only on the N = 1,024 cells that have a culprit
SMALL_ONLY = frozenset({"git_bayesect"})
#: what ``ours`` is told a step costs: the cost model, and this project's measured costs
#: (README: incremental builds 6-13 s, boot to SSH ~3 s, the reproducer ~5 s)
OURS_COSTS = {"ours": Costs(BUILD_S, BOOT_S, RUN_S), DECLARED: Costs(BUILD_S, BOOT_S, RUN_S),
              RATES: Costs(BUILD_S, BOOT_S, RUN_S), "ours-inc": Costs(10.0, 3.0, 5.0)}
#: how the goals name each of our rows
LABEL = {"ours": "ours, p and ε unknown", DECLARED: "ours, ε declared",
         RATES: "ours, p and ε declared", "ours-inc": "ours-inc"}
BINS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0 + 1e-9)


@dataclass(frozen=True)
class Cell:
    n: int
    p: float
    eps: float
    flake: bool = False  # no culprit: every failure is a false alarm
    crash: float = 0.0  # share of runs ending in an unrelated crash (SKIP)

    @property
    def name(self) -> str:
        what = "no culprit" if self.flake else f"p={self.p:g}"
        extra = f" crash={self.crash:g}" if self.crash else ""
        return f"N={self.n} {what} eps={self.eps:g}{extra}"


@dataclass(frozen=True)
class Trial:
    correct: bool
    confidence: float
    runs: int
    builds: int
    boots: int
    capped: bool = False  # ours hit MAX_RUNS


class World:
    """The simulated kernels: which fail, which crash."""

    def __init__(self, cell: Cell, culprit: int | None, rng: random.Random) -> None:
        self.cell, self.culprit, self.rng = cell, culprit, rng

    def run(self, c: int) -> Verdict:
        if self.rng.random() < self.cell.crash:
            return Verdict.SKIP
        bad = self.culprit is not None and c >= self.culprit
        fails = self.rng.random() < (self.cell.p if bad else self.cell.eps)
        return Verdict.BAD if fails else Verdict.GOOD


def drive_policy(policy: RunPolicy, world: World) -> Trial:
    built: set[int] = set()
    up: int | None = None
    runs = boots = 0
    while (c := policy.next_candidate()) is not None:
        built.add(c)
        if up != c:
            boots, up = boots + 1, c
        verdict = world.run(c)
        runs += 1
        if verdict is Verdict.SKIP:
            up = None  # the crash took the guest down
        policy.record(c, verdict)
    ans = policy.answer()
    right = ans.flake if world.culprit is None else ans.culprit == world.culprit
    return Trial(right, ans.confidence, runs, len(built), boots)


def drive_ours(n: int, world: World, costs: Costs, model: NoiseModel | None = None) -> Trial:
    eng = BayesSearch(n, model=model, target=TARGET, costs=costs,
                      budget=Budget(max_runs=MAX_RUNS))
    while (a := eng.next_action()) is not None:
        c = a.candidate
        if a.kind is ActionKind.BUILD:
            eng.mark_built(c)
        if a.kind is not ActionKind.RUN:
            eng.mark_booted(c)
        assert eng.guest_up == c
        verdict = world.run(c)
        eng.record(c, verdict)
        if verdict is Verdict.SKIP:
            eng.mark_guest_down()
    r = eng.result()
    right = r.culprit == world.culprit  # None == None: "flake" called on a flake
    return Trial(right, r.confidence, r.runs, r.builds, r.boots,
                 capped=r.stopped is not None and r.stopped.value == "runs")


MAKERS: dict[str, Callable[[int], RunPolicy]] = {
    "plain": PlainPolicy, "syzbot": SyzbotPolicy, "rep8": lambda n: RepeatPolicy(n, 8),
    "git_bayesect": lambda n: BayesectPolicy(n, TARGET, MAX_RUNS)}


def run_chunk(task: tuple[int, Cell, str, int, int]) -> tuple[Cell, str, list[Trial]]:
    seed, cell, policy, start, count = task
    out = []
    for t in range(start, start + count):
        truth = random.Random(f"{seed}:{cell.name}:{t}")
        culprit = None if cell.flake else truth.randrange(cell.n)
        world = World(cell, culprit, random.Random(f"{seed}:{cell.name}:{t}:{policy}"))
        out.append(drive_ours(cell.n, world, OURS_COSTS[policy], declared(cell, policy))
                   if policy in OURS_COSTS else drive_policy(MAKERS[policy](cell.n), world))
    return cell, policy, out


def declared(cell: Cell, policy: str) -> NoiseModel | None:
    """What a row is told: a declared rate is a point; the rest stay marginalised."""
    if policy == DECLARED:
        return NoiseModel(false_fail=RateGrid.point(cell.eps))
    if policy == RATES:
        return NoiseModel(trigger=RateGrid.point(0.5 if cell.flake else cell.p),
                          false_fail=RateGrid.point(cell.eps))
    return None


# ---------------------------------------------------------------- metrics

def capacity(p: float, eps: float, erasure: float = 0.0) -> float:
    """Bits per run of the test as a binary asymmetric channel (max over P(bad))."""
    def info(q: float) -> float:
        return _h(q * p + (1 - q) * eps) - q * _h(p) - (1 - q) * _h(eps)
    lo, hi = 0.0, 1.0
    for _ in range(100):  # the mutual information is concave in q
        m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        lo, hi = (m1, hi) if info(m1) < info(m2) else (lo, m2)
    return (1 - erasure) * info((lo + hi) / 2)


def _h(x: float) -> float:
    return 0.0 if x <= 0 or x >= 1 else -x * math.log2(x) - (1 - x) * math.log2(1 - x)


def calibration_error(trials: Sequence[Trial]) -> float:
    """Expected calibration error: per confidence bin |mean confidence - accuracy|, weighted."""
    err = 0.0
    for lo, hi in itertools.pairwise(BINS):
        in_bin = [t for t in trials if lo <= t.confidence < hi]
        if in_bin:
            conf = sum(t.confidence for t in in_bin) / len(in_bin)
            acc = sum(t.correct for t in in_bin) / len(in_bin)
            err += len(in_bin) / len(trials) * abs(conf - acc)
    return err


@dataclass(frozen=True)
class Stats:
    acc: float
    cal: float
    runs: float
    builds: float
    boots: float
    bound: float | None
    wall_h: float
    max_builds: int
    max_boots: int
    capped: int

    @classmethod
    def of(cls, cell: Cell, trials: Sequence[Trial]) -> Stats:
        k = len(trials)
        runs = sum(t.runs for t in trials) / k
        builds = sum(t.builds for t in trials) / k
        boots = sum(t.boots for t in trials) / k
        cap = capacity(cell.p, cell.eps, cell.crash)
        bound = None if cell.flake or cap <= 0 else math.log2(cell.n) / cap
        return cls(sum(t.correct for t in trials) / k, calibration_error(trials), runs,
                   builds, boots, bound, (builds * BUILD_S + boots * BOOT_S + runs * RUN_S) / 3600,
                   max(t.builds for t in trials), max(t.boots for t in trials),
                   sum(t.capped for t in trials))


# ---------------------------------------------------------------- the run

def cells(quick: bool) -> list[Cell]:
    sizes = (1024,) if quick else (1024, 16384)
    out = [Cell(n, p, eps) for n in sizes for eps in (0.0, 0.02) for p in (1.0, 0.7, 0.5, 0.3, 0.1)]
    return [*out, Cell(1024, 0.0, 0.02, flake=True), Cell(1024, 0.5, 0.02, crash=0.2)]


def measure(seed: int, trials: int, quick: bool, jobs: int, policies: Sequence[str]
            ) -> dict[tuple[Cell, str], list[Trial]]:
    chunk = 25
    tasks = [(seed, c, pol, s, min(chunk, trials - s))
             for c in cells(quick) for pol in policies for s in range(0, trials, chunk)
             if pol not in SMALL_ONLY or (c.n == 1024 and not c.flake)]
    # the slow ones first, so two workers finish together
    tasks.sort(key=lambda t: -(t[1].n * (t[2] in OURS_COSTS) / max(t[1].p, 0.05)))
    results: dict[tuple[Cell, str], list[Trial]] = {}
    with Pool(jobs) as pool:
        for cell, pol, out in pool.imap_unordered(run_chunk, tasks):
            results.setdefault((cell, pol), []).extend(out)
    return results


def table(results: dict[tuple[Cell, str], list[Trial]], quick: bool,
          policies: Sequence[str]) -> dict[tuple[Cell, str], Stats]:
    stats = {key: Stats.of(key[0], trials) for key, trials in results.items()}
    head = (f"{'cell':32} {'policy':20} {'acc%':>6} {'cal.err':>7} {'runs':>7} {'builds':>6} "
            f"{'boots':>6} {'runs/bound':>10} {'wall h':>7}")
    print(head)
    print("-" * len(head))
    for cell in cells(quick):
        for pol in policies:
            if (cell, pol) not in stats:
                continue
            s = stats[(cell, pol)]
            ratio = "-" if s.bound is None else f"{s.runs / s.bound:.2f}"
            capped = f"  ({s.capped} hit {MAX_RUNS} runs)" if s.capped else ""
            print(f"{cell.name:32} {pol:20} {100 * s.acc:6.1f} {100 * s.cal:7.1f} {s.runs:7.1f} "
                  f"{s.builds:6.1f} {s.boots:6.1f} {ratio:>10} {s.wall_h:7.2f}{capped}")
        print()
    return stats


@dataclass(frozen=True)
class Goal:
    what: str
    ok: bool
    value: str


def goals(stats: dict[tuple[Cell, str], Stats], results: dict[tuple[Cell, str], list[Trial]]
          ) -> list[Goal]:
    """The issue's goals, at N = 1,024, for each of our rows (rates unknown, eps declared,
    p and eps declared; run counts also for ``ours-inc``): every line names its row."""
    policies = {pol for _, pol in stats}
    ours = [pol for pol in ("ours", DECLARED, RATES) if pol in policies]
    def get(p: float, eps: float, pol: str = "ours", **kw: float | bool) -> Stats:
        return stats[(Cell(1024, p, eps, **kw), pol)]  # type: ignore[arg-type]

    out = []
    for pol in ours:
        tag = f"[{LABEL[pol]}]"
        for p, floor in ((1.0, 0.99), (0.7, 0.99), (0.5, 0.99), (0.3, 0.99), (0.1, 0.97)):
            for e in (0.0, 0.02):
                acc = get(p, e, pol).acc
                out.append(Goal(f"accuracy >= {100 * floor:.0f} % at p={p:g} eps={e:g} {tag}",
                                acc >= floor, f"{100 * acc:.1f} %"))
    for p, limit in ((0.3, 110), (0.1, 280)):
        for e in (0.0, 0.02):
            for pol in [pol for pol in OURS_COSTS if pol in policies]:
                s = get(p, e, pol)
                # the bound says how far below the goal any search could go (or that it cannot)
                bound = ("" if s.bound is None else f" (bound {s.bound:.0f})" if s.bound <= limit
                         else f" (bound {s.bound:.0f}: no search can meet this goal)")
                out.append(Goal(f"runs <= {limit} at p={p:g} eps={e:g} [{LABEL[pol]}]",
                                s.runs <= limit, f"{s.runs:.1f}{bound}"))
    for pol in ours:
        tag = f"[{LABEL[pol]}]"
        for e in (0.0, 0.02):
            mine, syz = get(0.5, e, pol).runs, get(0.5, e, "syzbot").runs
            out.append(Goal(f"runs <= 0.5 x syzbot's at p=0.5 eps={e:g} {tag}",
                            mine <= 0.5 * syz, f"{mine:.1f} vs {syz:.1f}"))
        det, logn = get(1.0, 0.0, pol), math.ceil(math.log2(1024))
        out.append(Goal(f"deterministic: builds <= {logn + 2} (every trial) {tag}",
                        det.max_builds <= logn + 2,
                        f"mean {det.builds:.1f}, max {det.max_builds}"))
        out.append(Goal(f"deterministic: boots <= 12 (every trial) {tag}", det.max_boots <= 12,
                        f"mean {det.boots:.1f}, max {det.max_boots}"))
        flake = get(0.0, 0.02, pol, flake=True).acc
        out.append(Goal(f"'it was a flake' called right >= 99 % {tag}", flake >= 0.99,
                        f"{100 * flake:.1f} %"))
        crash, calm = get(0.5, 0.02, pol, crash=0.2).acc, get(0.5, 0.02, pol).acc
        out.append(Goal(f"accuracy with unrelated crashes within 2 points of without {tag}",
                        crash >= calm - 0.02, f"{100 * crash:.1f} % vs {100 * calm:.1f} %"))
        pooled = [t for (_, name), ts in results.items() if name == pol for t in ts]
        cal = calibration_error(pooled)
        out.append(Goal(f"calibration error <= 2 points (all cells pooled) {tag}", cal <= 0.02,
                        f"{100 * cal:.2f} points over {len(pooled)} bisections"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 1,024 only, 40 trials: a smoke run")
    ap.add_argument("--trials", type=int, help="trials per cell (default 200; --quick: 40)")
    ap.add_argument("--inc", action="store_true",
                    help="also run ours told this project's measured (incremental) costs")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    trials = args.trials or (40 if args.quick else 200)
    start = time.monotonic()
    policies = (*POLICIES, "ours-inc") if args.inc else POLICIES
    results = measure(args.seed, trials, args.quick, args.jobs, policies)
    print(f"{trials} trials per cell, seed {args.seed}, target {TARGET} for ours; "
          f"wall h at build {BUILD_S:g} s, boot {BOOT_S:g} s, run {RUN_S:g} s\n")
    stats = table(results, args.quick, policies)
    checks = goals(stats, results)
    print("Goals (N = 1,024; each names the row it is measured on):")
    for g in checks:
        print(f"  {'PASS' if g.ok else 'FAIL'}  {g.what:84} {g.value}")
    print(f"\n{time.monotonic() - start:.0f} s on {args.jobs} worker(s)")
    return 0 if all(g.ok for g in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
