"""The git stage for flaky reproducers: :class:`~bisector.search.bayes.BayesSearch` driven
over real commits.

Plain bisection takes one verdict per commit; here every run feeds a posterior
over "the first bad commit is c" (and "it was only a flake"), and the engine
picks the next commit by expected information per second, with the costs this
bisection measured (a build, a boot, a run).  A commit is run again when that
is what the evidence needs, so the campaign's memo is not asked: each run is a
fresh, recorded step (``retest``).  Steps recorded before a crash are fed back
in on resume.  The answer is exported as ``git bisect`` marks, so
``report/bisect.log`` stays replayable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .git import git
from .outcomes import Likelihood, Stage, StageResult, Step, Terms
from .search.bayes import BayesResult, BayesSearch, Budget, Costs, NoiseModel, RateGrid
from .stages import StageContext
from .verdict import Verdict


@dataclass(frozen=True)
class BayesOptions:
    target: float = 0.95
    max_runs: int | None = None
    max_builds: int | None = None
    #: the reproducer's declared trigger rate (P(a run on a bad kernel fails)); None: learn it
    trigger_rate: float | None = None


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


def _ancestors(order: list[str], parents: dict[str, list[str]]):  # type: ignore[no-untyped-def]
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


def _observe(engine: BayesSearch, index: int, step: Step) -> None:
    """One tested step into the engine (BAD: the bug showed)."""
    if step.build_s > 0 and not step.cached:
        engine.mark_built(index, step.build_s)
    if step.verdict is Verdict.SKIP and ("does not build" in step.reason
                                         or "boot failure" in step.reason):
        engine.mark_untestable(index)
        return
    engine.mark_booted(index, step.boot_s or None)
    # a regression hunt: BAD (the bug showed) on or after the culprit, with rate p
    engine.record(index, step.verdict, step.test_s or None)
    engine.mark_guest_down()  # every step tears its guest down


def bayes_stage(ctx: StageContext, tree: Path, old_shas: Sequence[str], new_sha: str,
                opts: BayesOptions, earlier: Sequence[Step] = ()
                ) -> tuple[StageResult, list[Likelihood], str]:
    """Search with the Bayesian engine: the answer, the top hypotheses, a bisect log.

    Regression hunting only: the engine's noise is a bug that shows on the *new*
    side with some rate; a fix hunt has it on the old side (not yet supported)."""
    if ctx.terms.find_fix:
        raise UserError("--strategy bayes does not hunt fixes yet: use --strategy plain "
                        "with --find-fix")
    order, parents = candidates(tree, old_shas, new_sha)
    index = {s: i for i, s in enumerate(order)}
    model = NoiseModel(trigger=RateGrid.point(opts.trigger_rate)) \
        if opts.trigger_rate is not None else NoiseModel()
    engine = BayesSearch(len(order), model=model, costs=Costs(),
                         budget=Budget(max_builds=opts.max_builds, max_runs=opts.max_runs),
                         target=opts.target, ancestors=_ancestors(order, parents))
    for step in earlier:  # a resumed campaign: what was run before counts
        if step.candidate in index:
            _observe(engine, index[step.candidate], step)
    ctx.handler.message(f"bayes stage: {len(order)} candidate commits, confidence target "
                        f"{opts.target}")
    n = 0
    while (action := engine.next_action()) is not None:
        sha = order[action.candidate]
        n += 1
        ctx.handler.step_started(Stage.GIT, n, sha, 0)
        step = ctx.retest(Stage.GIT, sha)
        _observe(engine, action.candidate, step)
        ctx.handler.step_finished(Stage.GIT, n, step)
        top = engine.top(1)[0]
        what = "flake" if top.candidate is None else order[top.candidate][:12]
        ctx.handler.message(f"bayes: top hypothesis {what} at {top.probability:.3f}")
    res = engine.result()
    log = _bisect_log(ctx.terms, old_shas, new_sha, order, engine, tree)
    tops = [Likelihood(commit=None if h.candidate is None else order[h.candidate],
                       probability=round(h.probability, 4), rate=round(h.rate, 3))
            for h in res.top]
    return (_answer(res, order, opts), tops, log)


def _answer(res: BayesResult, order: list[str], opts: BayesOptions) -> StageResult:
    answer = res.answer
    why = f"stopped: {res.stopped.value if res.stopped else '?'}"
    if answer.candidate is None:
        return StageResult(note=f"the failures look like flakes, not a culprit: P(flake) = "
                                f"{answer.probability:.3f} after {res.runs} runs ({why})",
                           candidates=[order[-1]], inconsistent=True)
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
