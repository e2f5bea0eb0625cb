"""The git stage for flaky reproducers: :class:`~bisector.search.bayes.BayesSearch` driven
over real commits.

Plain bisection takes one verdict per commit; here every run feeds a posterior
over "the first bad commit is c" (and "it was only a flake"), and the engine
picks the next commit by expected information per second, with the costs this
bisection measured (a build, a boot, a run: :class:`MeasuredCosts`).  A step
boots a kernel once and runs the reproducer ``repeat`` times; each iteration is
one run for the engine (:func:`runs_of`), since each is one draw of the flaky
bug.  A commit is run again when that is what the evidence needs, so the
campaign's memo is not asked: each step is fresh and recorded (``retest``).
Steps recorded before a crash are fed back in on resume.  The answer is
exported as ``git bisect`` marks, so ``report/bisect.log`` stays replayable,
and the posterior after every run is kept (:class:`~bisector.outcomes.PosteriorHistory`)
for the report's evidence: :func:`replay` rebuilds it from stored steps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import CommandError
from .git import git
from .outcomes import (
    Likelihood,
    PosteriorBin,
    PosteriorHistory,
    PosteriorRun,
    Stage,
    StageResult,
    Step,
    Terms,
)
from .search.bayes import BayesResult, BayesSearch, Budget, Costs, NoiseModel, RateGrid
from .stages import StageContext
from .verdict import Verdict

#: at most this many columns in the posterior history (and its plot)
HISTORY_BINS = 64


@dataclass(frozen=True)
class BayesOptions:
    target: float = 0.95
    max_runs: int | None = None
    max_builds: int | None = None
    #: the reproducer's declared trigger rate (P(a run on a bad kernel fails)); None: learn it
    trigger_rate: float | None = None
    #: the reproducer's declared false-alarm rate (P(a run on a good kernel fails));
    #: None: unknown, marginalised
    false_alarm_rate: float | None = None

    def noise_model(self) -> NoiseModel:
        """The engine's noise model: a declared rate is a point, an unknown one a grid."""
        model = NoiseModel()
        if self.trigger_rate is not None:
            model = replace(model, trigger=RateGrid.point(self.trigger_rate))
        if self.false_alarm_rate is not None:
            model = replace(model, false_fail=RateGrid.point(self.false_alarm_rate))
        return model


def strategy_for(asked: str, trigger_rate: float | None) -> str:
    """plain, bayes, or (``auto``) bayes when the reproducer declares a trigger rate."""
    if asked != "auto":
        return asked
    return "bayes" if trigger_rate is not None else "plain"


def candidates(tree: Path, old_shas: Sequence[str], new_sha: str
               ) -> tuple[list[str], dict[str, list[str]]]:
    """The commits that may be the first new one, oldest first (the new end last), and
    each one's parents within the range."""
    out = git(tree, "rev-list", "--topo-order", "--reverse", "--parents", new_sha, "--not",
              *old_shas).stdout.split("\n")
    order: list[str] = []
    parents: dict[str, list[str]] = {}
    for line in out:
        if line.strip():
            sha, *ps = line.split()
            order.append(sha)
            parents[sha] = ps
    inside = set(order)
    return order, {s: [p for p in ps if p in inside] for s, ps in parents.items()}


def _ancestors(order: list[str], parents: dict[str, list[str]]
               ) -> Callable[[int], frozenset[int]] | None:
    """None for a line (the engine's exact fast path), else each index's ancestors-or-self."""
    if all(len(parents[s]) <= 1 for s in order) and all(
            (parents[s] == [order[i - 1]]) if i else not parents[s] for i, s in enumerate(order)):
        return None
    index = {s: i for i, s in enumerate(order)}
    anc: list[frozenset[int]] = []
    for i, s in enumerate(order):  # topological: parents come first
        acc = {i}
        for p in parents[s]:
            acc |= anc[index[p]]
        anc.append(frozenset(acc))
    return lambda i: anc[i]


_ITERATION = re.compile(r"iteration-(\d+)\.json")


def runs_of(step: Step) -> list[Verdict]:
    """The runs a step made: one per iteration (``iteration-N.json`` in its run
    directory, in order), or -- a step without them (replayed, scripted, or one whose
    files are gone) -- its verdict as one run.

    The iterations, not the combined verdict, are what the engine's model is about:
    each is one draw of a bug that shows with rate p.  A step the runner stopped early
    (its first BAD settled it) is still an honest sample: when to stop looking does
    not change what the runs that were made say.
    """
    if not step.run_dir:
        return [step.verdict]
    found: list[tuple[int, Verdict]] = []
    try:
        for path in Path(step.run_dir).iterdir():
            m = _ITERATION.fullmatch(path.name)
            if m:
                found.append((int(m.group(1)), Verdict(json.loads(path.read_text())["verdict"])))
    except (OSError, ValueError, KeyError, TypeError):
        return [step.verdict]
    return [v for _, v in sorted(found)] or [step.verdict]


class MeasuredCosts:
    """What this bisection's builds, boots and runs took, on average.

    The engine trades runs against builds by their cost: told 600 s a build it
    re-runs where a 10 s incremental build would have been the better buy.  Each
    mean starts from the default (:class:`~bisector.search.bayes.Costs`) as one
    observation, so one odd step does not swing it.
    """

    def __init__(self, start: Costs | None = None) -> None:
        s = start or Costs()
        self._sums = [s.build_s, s.boot_s, s.run_s]
        self._counts = [1, 1, 1]

    def add(self, step: Step, runs: int) -> None:
        for k, (seconds, n) in enumerate(((step.build_s, 1 if step.built else 0),
                                          (step.boot_s, 1 if step.boot_s > 0 else 0),
                                          (step.test_s, runs if step.test_s > 0 else 0))):
            if n:
                self._sums[k] += seconds
                self._counts[k] += n

    @property
    def costs(self) -> Costs:
        b, o, r = (s / n for s, n in zip(self._sums, self._counts, strict=True))
        return Costs(build_s=b, boot_s=o, run_s=r)


def bin_starts(n: int, bins: int = HISTORY_BINS) -> list[int]:
    """The first candidate of each stretch of 0..n-1: at most ``bins`` of them, all of
    one size but the last (so no column of the plot holds more commits, and so more
    prior mass, than its neighbours)."""
    size = -(-n // bins)
    return list(range(0, n, size))


class _Recorder:
    """Feeds steps to the engine, and keeps the posterior after each run they made."""

    def __init__(self, engine: BayesSearch, order: list[str], subjects: dict[str, str]) -> None:
        self.engine, self.order = engine, order
        self.starts = bin_starts(len(order))
        ends = [*self.starts[1:], len(order)]
        self.bins = [PosteriorBin(first=s, last=e - 1, commit=order[s],
                                  subject=subjects.get(order[s], ""))
                     for s, e in zip(self.starts, ends, strict=True)]
        self.runs: list[PosteriorRun] = []
        self.measured = MeasuredCosts()
        self.steps = 0

    def observe(self, index: int, step: Step) -> None:
        """One tested step into the engine (BAD: the bug showed), a snapshot per run."""
        eng = self.engine
        self.steps += 1
        if step.built:
            eng.mark_built(index, step.build_s)
        if step.verdict is Verdict.SKIP and ("does not build" in step.reason
                                             or "boot failure" in step.reason):
            eng.mark_untestable(index)
            return
        eng.mark_booted(index, step.boot_s or None)
        runs = runs_of(step)
        for it, verdict in enumerate(runs, 1):
            # a regression hunt: BAD (the bug showed) on or after the culprit, with rate p
            eng.record(index, verdict, step.test_s / len(runs) if step.test_s else None)
            if verdict is not Verdict.SKIP:
                self._snapshot(index, verdict, it)
        eng.mark_guest_down()  # every step tears its guest down
        self.measured.add(step, len(runs))
        eng.use_costs(self.measured.costs)

    def _snapshot(self, index: int, verdict: Verdict, iteration: int) -> None:
        eng = self.engine
        top = eng.top(1)[0]
        self.runs.append(PosteriorRun(
            step=self.steps, commit=self.order[index], verdict=verdict, iteration=iteration,
            mass=[round(m, 6) for m in eng.mass_by_range(self.starts)],
            flake=round(eng.probability(None), 6),
            top=None if top.candidate is None else self.order[top.candidate],
            top_probability=round(top.probability, 6)))

    def history(self) -> PosteriorHistory:
        return PosteriorHistory(candidates=len(self.order), bins=self.bins, runs=self.runs)


def _subjects(tree: Path, shas: Sequence[str]) -> dict[str, str]:
    """Subjects of a few commits (the plot's tooltips); none if git cannot say."""
    try:
        out = git(tree, "log", "--no-walk=unsorted", "--format=%H%x1f%s", *shas).stdout
    except CommandError:
        return {}
    return dict(line.split("\x1f", 1) for line in out.splitlines() if "\x1f" in line)


def _setup(tree: Path, old_shas: Sequence[str], new_sha: str, opts: BayesOptions,
           find_fix: bool) -> tuple[list[str], _Recorder]:
    """The candidates and a fresh engine with its recorder, as the stage and a replay need."""
    order, parents = candidates(tree, old_shas, new_sha)
    engine = BayesSearch(len(order), model=opts.noise_model(), costs=Costs(),
                         budget=Budget(max_builds=opts.max_builds, max_runs=opts.max_runs),
                         target=opts.target, ancestors=_ancestors(order, parents),
                         find_fix=find_fix)
    shas = [order[s] for s in bin_starts(len(order))]
    return order, _Recorder(engine, order, _subjects(tree, shas))


@dataclass(frozen=True)
class BayesStageResult:
    """The answer, the top hypotheses (flake among them), the bisect log, and the
    posterior after every run: what the campaign stores and the report shows."""

    stage: StageResult
    hypotheses: list[Likelihood]
    bisect_log: str
    history: PosteriorHistory


def bayes_search(ctx: StageContext, tree: Path, old_shas: Sequence[str], new_sha: str,
                 opts: BayesOptions, earlier: Sequence[Step] = ()) -> BayesStageResult:
    """Search with the Bayesian engine.

    A regression hunt has the flaky bug on the new side; ``--find-fix`` has it on the
    old side (the engine's ``find_fix``): a fixed kernel that passes proves little on
    its own, since a broken one passes too when the bug does not trigger."""
    order, rec = _setup(tree, old_shas, new_sha, opts, ctx.terms.find_fix)
    index = {s: i for i, s in enumerate(order)}
    engine = rec.engine
    for step in earlier:  # a resumed campaign: what was run before counts
        if step.candidate in index:
            rec.observe(index[step.candidate], step)
    ctx.handler.message(f"bayes stage: {len(order)} candidate commits, confidence target "
                        f"{opts.target}")
    n = 0
    while (action := engine.next_action()) is not None:
        sha = order[action.candidate]
        n += 1
        ctx.handler.step_started(Stage.GIT, n, sha, 0)
        step = ctx.retest(Stage.GIT, sha)
        rec.observe(action.candidate, step)
        ctx.handler.step_finished(Stage.GIT, n, step)
        top = engine.top(1)[0]
        what = "flake" if top.candidate is None else order[top.candidate][:12]
        ctx.handler.message(f"bayes: top hypothesis {what} at {top.probability:.3f}")
    res = engine.result()
    log = _bisect_log(ctx.terms, old_shas, new_sha, order, engine, tree)
    return BayesStageResult(_answer(res, order, opts, ctx.terms),
                            _hypotheses(engine, res, order), log,
                            rec.history())


def bayes_stage(ctx: StageContext, tree: Path, old_shas: Sequence[str], new_sha: str,
                opts: BayesOptions, earlier: Sequence[Step] = ()
                ) -> tuple[StageResult, list[Likelihood], str]:
    """:func:`bayes_search` without the posterior history (the campaign's older call)."""
    out = bayes_search(ctx, tree, old_shas, new_sha, opts, earlier)
    return out.stage, out.hypotheses, out.bisect_log


def replay(tree: Path, old_shas: Sequence[str], new_sha: str, steps: Sequence[Step],
           trigger_rate: float | None = None, find_fix: bool = False) -> PosteriorHistory:
    """The posterior history of a finished search, rebuilt from its git-stage steps.

    The engine is a pure function of the candidates and the runs, so feeding the
    stored steps again gives the posterior the search had after each run -- for a
    result stored without its history."""
    order, rec = _setup(tree, old_shas, new_sha, BayesOptions(trigger_rate=trigger_rate),
                        find_fix)
    index = {s: i for i, s in enumerate(order)}
    for step in steps:
        if step.stage is Stage.GIT and step.candidate in index:
            rec.observe(index[step.candidate], step)
    return rec.history()


def _hypotheses(engine: BayesSearch, res: BayesResult, order: list[str]) -> list[Likelihood]:
    """The top hypotheses, and "flake" whether or not it is among them."""
    hyps = list(res.top)
    if not any(h.is_flake for h in hyps):
        hyps.append(engine.flake())
    return [Likelihood(commit=None if h.candidate is None else order[h.candidate],
                       probability=round(h.probability, 4), rate=round(h.rate, 3))
            for h in hyps]


def _answer(res: BayesResult, order: list[str], opts: BayesOptions,
            terms: Terms) -> StageResult:
    answer = res.answer
    why = f"stopped: {res.stopped.value if res.stopped else '?'}"
    if answer.candidate is None:
        what = ("the passes look like luck, not a fix: P(no fix in the range)"
                if terms.find_fix else "the failures look like flakes, not a culprit: P(flake)")
        return StageResult(note=f"{what} = {answer.probability:.3f} after {res.runs} runs "
                                f"({why})", candidates=[order[-1]], inconsistent=True)
    culprit = order[answer.candidate]
    if answer.probability < opts.target:
        left = [order[h.candidate] for h in res.top if h.candidate is not None]
        return StageResult(candidates=left, note=f"no commit reached {opts.target}: the "
                           f"likeliest is {culprit[:12]} at {answer.probability:.3f} "
                           f"after {res.runs} runs ({why})")
    return StageResult(first=culprit, note=f"P = {answer.probability:.3f} after {res.runs} "
                                           f"runs, {res.builds} builds ({why})")


def _bisect_log(terms: Terms, old_shas: Sequence[str], new_sha: str, order: list[str],
                engine: BayesSearch, tree: Path) -> str:
    """The answer as a replayable ``git bisect log`` (the engine's marks), ending with
    the comment git writes when it names a commit."""
    lines = [f"git bisect start '--term-old={terms.old}' '--term-new={terms.new}'",
             f"git bisect {terms.new} {new_sha}"]
    lines += [f"git bisect {terms.old} {s}" for s in old_shas]
    first = None
    for mark in engine.answer_marks():
        term = terms.new if mark.term == "bad" else terms.old
        lines.append(f"git bisect {term} {order[mark.candidate]}")
        if mark.term == "bad":
            first = order[mark.candidate]
    if first is not None:
        subject = git(tree, "log", "-1", "--format=%s", first).stdout.strip()
        lines.append(f"# first {terms.new} commit: [{first}] {subject}")
    return "\n".join(lines) + "\n"
