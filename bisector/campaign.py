"""A bisection campaign: what ``bisector bisect`` runs, persisted and resumable.

Kinds, chosen from the endpoints (:func:`plan_campaign`, which checks
everything it can *before* anything is recorded):

* **git**: ``--good REV… --bad REV --tree PATH``: verify the endpoints, then
  ``git bisect`` with kernels built from the tree.
* **list**: prebuilt endpoints from one source (``debian:6.1.0-47`` ..
  ``debian:6.1.0-56``, ``ubuntu-mainline:v5.6`` .. ``v5.8``): binary search on
  the source's ordered list.
* **two-stage**: prebuilt endpoints *and* ``--tree``: the list stage finds the
  adjacent old/new pair, both are mapped to their upstream tags, the tags are
  tested (a distro kernel is not the vanilla kernel: when upstream behaves
  differently we say so and stop), then the git stage runs between them.

The stages themselves are in :mod:`bisector.stages`; testing one candidate is
the injected :class:`~bisector.tester.StepTester`.

Resuming: every finished step is in SQLite before the search hears of it.
Re-running the same command (or ``bisector resume``) finds the unfinished
campaign (keyed on resolved paths and the reproducer's content) and uses its
steps as a memo, keyed by candidate: the search re-traces its path without
testing anything twice.  ``--replay LOG`` seeds the memo from a ``git bisect
log`` (endpoint checks included).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import reproducer, runner
from .errors import UserError
from .flaky import BayesOptions, bayes_search, runs_of, strategy_for
from .git import commit_info
from .kernel import KernelResolver, is_prebuilt
from .ledger import LedgerContext, StepLedger, StepPool, open_ledger
from .outcomes import (
    CampaignResult,
    CampaignStatus,
    GitRange,
    Stage,
    StageRecord,
    StageResult,
    Step,
    Terms,
    VerificationStatus,
)
from .search import Handler, parse_bisect_log
from .stages import (
    ListPlan,
    confirm_culprit,
    git_stage,
    list_stage,
    map_upstream,
    plan_list,
    verify,
)
from .store import Campaign, Store
from .tester import KernelTester, StepTester
from .verdict import Verdict


def _abs(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


@dataclass
class BisectArgs:
    """What the user asked for; stored with the campaign, so ``resume`` can rebuild it."""

    repro: str
    good: list[str]
    bad: list[str]
    tree: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    find_fix: bool = False
    term_old: str | None = None
    term_new: str | None = None
    fragments: list[str] = field(default_factory=list)
    verify: bool = True
    replay: str | None = None
    accel: str = "auto"
    boot_timeout: float = 180.0
    memory_mb: int = 1024
    cpus: int = 2
    report_dir: str | None = None
    #: let a list bisection over a distro's kernels cross upstream series
    across_series: bool = False
    #: re-test the culprit, its parents and its revert before presenting it
    verify_culprit: bool = True
    #: plain (git bisect), bayes (noisy search), auto (bayes for a declared trigger rate)
    strategy: str = "auto"
    #: the Bayesian search stops when its top hypothesis reaches this
    confidence: float = 0.95
    max_runs: int | None = None
    max_builds: int | None = None
    #: P(a run on a bad kernel fails) measured elsewhere (a sweep's flaky cell), used
    #: when the reproducer declares none: it feeds the Bayesian search's noise model
    trigger_rate: float | None = None

    def __post_init__(self) -> None:
        # campaigns stored before several endpoints were allowed hold plain strings
        self.good = [self.good] if isinstance(self.good, str) else list(self.good)
        self.bad = [self.bad] if isinstance(self.bad, str) else list(self.bad)

    def resolved(self) -> BisectArgs:
        """Paths made absolute: the same campaign whatever directory it is run from."""
        return replace(self, repro=_abs(self.repro) or self.repro, tree=_abs(self.tree),
                       fragments=[_abs(f) or f for f in self.fragments],
                       replay=_abs(self.replay), report_dir=_abs(self.report_dir))

    def key(self, repro_text: str) -> str:
        d = asdict(self.resolved())
        d.pop("report_dir")
        d["repro_sha"] = hashlib.sha256(repro_text.encode()).hexdigest()
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:24]

    def endpoints(self, terms: Terms) -> tuple[list[str], str]:
        """The old endpoints (git takes several) and the one new endpoint."""
        olds, news = (self.bad, self.good) if terms.find_fix else (self.good, self.bad)
        new_flag = "--good" if terms.find_fix else "--bad"
        if len(news) != 1:
            raise UserError(f"{new_flag} takes exactly one revision "
                            f"({'the fixed' if terms.find_fix else 'the bad'} end), "
                            f"got {len(news)}")
        if not olds:
            raise UserError("need at least one " + ("--bad" if terms.find_fix else "--good"))
        return olds, news[0]


@dataclass(frozen=True)
class Plan:
    olds: list[str]
    new: str
    list_plan: ListPlan | None = None
    old_shas: tuple[str, ...] = ()
    new_sha: str = ""


def plan_campaign(args: BisectArgs, terms: Terms, kernels: KernelResolver) -> Plan:
    """Check endpoints, refs and ranges; a UserError here records no campaign."""
    olds, new = args.endpoints(terms)
    ends = [*olds, new]
    if all(is_prebuilt(e) for e in ends):
        if len(olds) != 1:
            raise UserError("a bisection over prebuilt kernels takes one --good and one --bad")
        if args.tree:
            kernels.git_source  # noqa: B018 - checks the tree now, not after the list stage
        return Plan(olds, new, list_plan=plan_list(olds[0], new, args.across_series))
    if any(is_prebuilt(e) for e in ends):
        raise UserError("--good and --bad must all be prebuilt kernels "
                        "(debian:…, ubuntu-mainline:…) or all git revisions")
    src = kernels.git_source
    return Plan(olds, new, old_shas=tuple(src.rev_parse(o) for o in olds),
                new_sha=src.rev_parse(new))


def replayed_steps(path: Path, terms: Terms, rev_parse: Callable[[str], str]) -> list[Step]:
    """The verdicts of a ``git bisect log`` as recorded steps (endpoint marks included)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--replay {path}: cannot read: {exc}") from exc
    pairs = parse_bisect_log(text)
    if not pairs:
        raise UserError(f"--replay {path}: no 'git bisect <term> <sha>' lines")
    return [Step(Stage.GIT, rev_parse(sha), terms.verdict_for(term),
                 f"replayed from {path.name} ({term})", replayed=True) for term, sha in pairs]


#: the stages whose runs are evidence about the git range (the list stage's are not)
_RUN_STAGES = (Stage.GIT, Stage.CONFIRM, Stage.VERIFY)


@dataclass
class StrategyChoice:
    """Which git-stage strategy a campaign uses, and when plain bisection hands over.

    ``auto`` is plain bisection unless the reproducer declares a trigger rate; a
    plain search whose verification saw a commit give both verdicts :meth:`switch`es
    to the Bayesian one (:meth:`may_switch`), which then weighs every run so far.
    """

    args: BisectArgs
    declared_rate: float | None  # the reproducer's verdict.trigger_rate
    false_alarm_rate: float | None  # the reproducer's verdict.false_alarm_rate

    def trigger_rate(self) -> float | None:
        return self.declared_rate if self.declared_rate is not None else self.args.trigger_rate

    def name(self) -> str:
        return strategy_for(self.args.strategy, self.trigger_rate())

    def options(self) -> BayesOptions:
        a = self.args
        return BayesOptions(target=a.confidence, max_runs=a.max_runs, max_builds=a.max_builds,
                            trigger_rate=self.trigger_rate(),
                            false_alarm_rate=self.false_alarm_rate)

    def may_switch(self, steps: list[Step]) -> bool:
        """``--strategy auto``, and some commit has given both verdicts (over its steps,
        or among one step's iterations): a regression or a fix hunt alike."""
        if self.args.strategy != "auto":
            return False
        seen: dict[str, set[Verdict]] = {}
        for s in steps:
            if s.stage in _RUN_STAGES:
                seen.setdefault(s.candidate, set()).update(runs_of(s))
        return any({Verdict.GOOD, Verdict.BAD} <= v for v in seen.values())

    def switch(self) -> None:
        self.args = replace(self.args, strategy="bayes")

    def bayes(self, ctx: LedgerContext, tree: Path, rng: GitRange, steps: list[Step],
              result: CampaignResult) -> StageResult:
        """The Bayesian git stage, fed every run this campaign made so far (a resume's,
        or the plain search's that handed over), its evidence into ``result``."""
        earlier = [s for s in steps if s.stage in _RUN_STAGES]
        out = bayes_search(ctx, tree, rng.old_shas, rng.new_sha, self.options(), earlier)
        result.hypotheses, result.bisect_log = out.hypotheses, out.bisect_log
        result.posterior, result.strategy = out.history, "bayes"
        return out.stage


class CampaignRunner:
    """Runs one campaign: its memo, its step directories, its stages in order."""

    def __init__(self, args: BisectArgs, store: Store, handler: Handler,
                 tester: StepTester | None = None, pool: StepPool | None = None) -> None:
        self.args = args.resolved()
        self.store = store
        self.handler = handler
        self.repro = reproducer.load(Path(self.args.repro), self.args.params)
        self.terms = Terms.make(args.find_fix, args.term_old, args.term_new)
        self.kernels = KernelResolver(
            Path(self.args.tree) if self.args.tree else None,
            required=self.repro.spec.requires.config,
            fragments=[Path(f) for f in self.args.fragments], say=handler.message)
        opts = runner.RunOptions(accel=args.accel, boot_timeout=args.boot_timeout,
                                 memory_mb=args.memory_mb, cpus=args.cpus)
        self.tester = tester or KernelTester(self.repro, opts, self.kernels, handler.message)
        self.pool = pool
        spec = self.repro.spec.verdict
        self.choice = StrategyChoice(self.args, spec.trigger_rate, spec.false_alarm_rate)
        self.campaign: Campaign | None = None
        self.ledger: StepLedger | None = None
        self.ctx: LedgerContext  # the stages' view of the ledger, once it is open

    # ------------------------------------------------------------ memo and steps
    def _open(self) -> Campaign:
        self.ledger = open_ledger(self.store, self.args.key(self.repro.text), asdict(self.args),
                                  self.tester, self.handler.message, self.pool)
        self.campaign = self.ledger.campaign
        self.ctx = LedgerContext(self.terms, self.handler, self.ledger)
        if self.args.replay:
            self._load_replay(Path(self.args.replay))
        return self.campaign

    def _load_replay(self, path: Path) -> None:
        if not self.args.tree:
            raise UserError("--replay needs --tree (it replays a git bisect log)")
        assert self.ledger is not None
        for step in replayed_steps(path, self.terms, self.kernels.git_source.rev_parse):
            if step.candidate not in self.ledger.recorded:
                self.ledger.record(step)

    # ------------------------------------------------------------ stages
    def run(self) -> CampaignResult:
        plan = plan_campaign(self.args, self.terms, self.kernels)
        self._open()
        assert self.campaign is not None
        result = CampaignResult(campaign_id=self.campaign.id, status=CampaignStatus.RUNNING,
                                terms_old=self.terms.old, terms_new=self.terms.new,
                                find_fix=self.terms.find_fix)
        try:
            return self._run(plan, result)
        except UserError as exc:
            result.reason = str(exc)
            self._finish(CampaignStatus.FAILED, result)
            raise

    def _run(self, plan: Plan, result: CampaignResult) -> CampaignResult:
        if plan.list_plan is None:
            result.range = GitRange(olds=plan.olds, new=plan.new, old_shas=list(plan.old_shas),
                                    new_sha=plan.new_sha)
            names = [f"endpoint {o} ({s[:12]})" for o, s in zip(plan.olds, plan.old_shas,
                                                                 strict=True)]
            return self._git(result, names, f"endpoint {plan.new} ({plan.new_sha[:12]})",
                             self.args.verify)
        lst = list_stage(self.ctx, plan.list_plan, self.args.verify)
        if isinstance(lst, str):
            result.reason = lst
            return self._finish(CampaignStatus.MISMATCH, result)
        list_answer(plan.list_plan, lst, result)
        if not lst.found:
            return self._finish(CampaignStatus.INCONCLUSIVE, result)
        if not self.args.tree:
            return self._finish(CampaignStatus.FOUND, result)
        src = self.kernels.git_source
        mapped = map_upstream(src.tree, lst)
        if isinstance(mapped, str):
            result.reason = mapped
            return self._finish(CampaignStatus.MISMATCH, result)
        result.upstream = mapped
        self.handler.message(f"{mapped.old_spec} → {mapped.old_tag}, {mapped.new_spec} → "
                             f"{mapped.new_tag}: bisecting upstream")
        result.range = GitRange(olds=[mapped.old_tag], new=mapped.new_tag,
                                old_shas=[src.rev_parse(mapped.old_tag)],
                                new_sha=src.rev_parse(mapped.new_tag))
        # the upstream tags are always tested: a distro kernel is not the vanilla kernel
        return self._git(result, [f"upstream {mapped.old_tag} (base of {mapped.old_spec})"],
                         f"upstream {mapped.new_tag} (base of {mapped.new_spec})", True)

    def _git(self, result: CampaignResult, old_names: list[str], new_name: str,
             do_verify: bool) -> CampaignResult:
        rng = result.range
        assert rng is not None
        # one verdict per endpoint says little about a flaky bug: the Bayesian search
        # weighs the endpoints' runs with all the others (and "flake" if they disagree)
        if do_verify and self.choice.name() != "bayes":
            why = verify(self.ctx, list(zip(rng.old_shas, old_names, strict=True)),
                         (rng.new_sha, new_name))
            if why is not None:
                if result.upstream:
                    why += (" — the distro kernel does not behave like the upstream tag it is "
                            "based on (distro patches/config): the git stage was not run")
                result.reason = why
                return self._finish(CampaignStatus.MISMATCH, result)
        src = self.kernels.git_source
        bayes = self.choice.name() == "bayes"
        if bayes:
            src.ensure_worktree()
            res = self.choice.bayes(self.ctx, src.tree, rng, self._steps(), result)
        else:
            res, result.bisect_log, result.rounds = git_stage(
                self.ctx, src.ensure_worktree(), rng.old_shas, rng.new_sha)
            result.workers = self.ctx.width
        result.stages.append(StageRecord(stage=Stage.GIT, **asdict(res)))
        if res.found and res.first is not None:
            result.culprit = commit_info(src.tree, res.first)
            result.verification = confirm_culprit(self.ctx, src, res.first, rng.new_sha,
                                                  self.args.verify_culprit, flaky=bayes)
            doubtful = result.verification.status is VerificationStatus.DOUBTFUL
            if doubtful and not bayes and self.choice.may_switch(self._steps()):
                # the same commit gave both verdicts: one verdict per commit cannot be
                # trusted here, so the noisy search weighs every run made so far
                self.handler.message("repeats disagree (a commit tested both good and bad): "
                                     "switching to the Bayesian search")
                result.strategy_note = (f"plain bisection named {res.first[:12]}, but its "
                                        "verification saw repeats disagree: the Bayesian "
                                        "search took over with every run made so far")
                result.culprit, result.verification = None, None
                result.stages.pop()
                self.choice.switch()
                return self._git(result, old_names, new_name, False)
            if doubtful:
                result.reason = result.verification.summary
            return self._finish(CampaignStatus.DOUBTFUL if doubtful else CampaignStatus.FOUND,
                                result)
        result.reason = res.note
        if res.inconsistent:
            return self._finish(CampaignStatus.MISMATCH, result)
        result.candidates = [commit_info(src.tree, c) for c in res.candidates]
        return self._finish(CampaignStatus.INCONCLUSIVE, result)

    def _steps(self) -> list[Step]:
        assert self.campaign is not None
        return self.store.steps(self.campaign.id)

    def _finish(self, status: CampaignStatus, result: CampaignResult) -> CampaignResult:
        assert self.campaign is not None
        result.status = status
        self.store.finish(self.campaign.id, status, result.model_dump(mode="json"))
        return result


def list_answer(plan: ListPlan, lst: StageResult, result: CampaignResult) -> None:
    """The list stage's answer into the result, with what its kernels are upstream."""
    result.stages.append(StageRecord(stage=Stage.LIST, **asdict(lst)))
    result.list_note = plan.note
    upstream = {e.spec: e.upstream for e in plan.items}
    result.first_kernel, result.last_old_kernel = lst.first, lst.last_old
    result.first_upstream = upstream.get(lst.first or "")
    result.last_old_upstream = upstream.get(lst.last_old or "")
    result.candidate_kernels = list(lst.candidates)
    result.reason = lst.note


def run_campaign(args: BisectArgs, handler: Handler, store: Store | None = None,
                 tester: StepTester | None = None, pool: StepPool | None = None
                 ) -> CampaignResult:
    """Run (or resume) a campaign.  On an infrastructure error it stays ``RUNNING``,
    so the same command, or ``bisector resume``, continues it.  With a ``pool`` of k
    testers (Dask workers), the git stage tests k commits per round."""
    return CampaignRunner(args, store or Store(), handler, tester, pool).run()
