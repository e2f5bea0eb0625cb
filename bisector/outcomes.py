"""Every way a step, a search stage and a campaign can end, typed and in one place.

A reader who wants to know what bisector can answer reads this module (as one
reads syzkaller's ``bisect.Result``):

* :class:`Terms` — the two states being searched for (``good``/``bad``, or
  ``broken``/``fixed`` when hunting a fix) and how verdicts map onto them.
* :class:`Step` — one candidate (a prebuilt kernel spec or a commit) tested
  once: its verdict, why, what it cost, where its evidence is.  The same type
  is what the tester returns, what the store keeps and what reports print.
* :class:`StageResult` — the answer of one search over an ordered list or a
  git range: the first "new" candidate, or the honest list of candidates that
  are left, or the reason the search was inconsistent.
* :class:`CampaignResult` with :class:`CampaignStatus` — what ``bisector
  bisect`` ends with: a culprit (``FOUND``), candidates (``INCONCLUSIVE``), an
  endpoint or distro/upstream disagreement (``MISMATCH``), or a campaign that
  could not run (``FAILED``).  ``RUNNING`` is a campaign that was interrupted
  and can be resumed.
* :class:`CulpritVerification` — a git culprit re-tested with its parents and
  its revert, and checked for culprits that cannot be right: ``CONFIRMED``,
  ``DOUBTFUL`` (with the failed checks) or ``NOT_RUN``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from .errors import UserError
from .verdict import Verdict


@dataclass(frozen=True)
class Terms:
    """git bisect terms: ``old`` is the state of the older endpoint."""

    old: str = "good"
    new: str = "bad"
    find_fix: bool = False

    @classmethod
    def make(cls, find_fix: bool = False, old: str | None = None,
             new: str | None = None) -> Terms:
        terms = (cls(old or "broken", new or "fixed", True) if find_fix
                 else cls(old or "good", new or "bad", False))
        # git's own rule: 'bad'/'new' name only the new state, 'good'/'old' only the old
        if terms.old == terms.new or terms.old in ("bad", "new") \
                or terms.new in ("good", "old"):
            raise UserError(f"bisect terms {terms.old!r}/{terms.new!r}: the old and new "
                            "terms must differ, and 'bad'/'new' cannot name the old state "
                            "nor 'good'/'old' the new one")
        return terms

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


class Stage(enum.Enum):
    """Where in a campaign a step was taken."""

    VERIFY = "verify"  # an endpoint (or a merge base) checked before searching
    CONFIRM = "confirm"  # the culprit, its parents, its revert re-tested after the search
    LIST = "list"  # binary search over a source's ordered list of prebuilt kernels
    GIT = "git"  # git bisect over commits


@dataclass
class Step:
    """One candidate tested once (or replayed from a log)."""

    stage: Stage
    candidate: str  # kernel spec (list stage) or full commit sha
    verdict: Verdict
    reason: str
    build_s: float = 0.0
    boot_s: float = 0.0
    test_s: float = 0.0
    total_s: float = 0.0
    cached: bool = False  # the kernel came from the artifact cache (no build)
    run_dir: str | None = None
    build_log: str | None = None
    replayed: bool = False  # from --replay, not tested in this campaign
    finished: str = ""  # ISO time the store recorded it

    @property
    def built(self) -> bool:
        """A kernel was compiled for this step (not cached, not prebuilt)."""
        return self.stage is not Stage.LIST and self.build_s > 0 and not self.cached


@dataclass
class StageResult:
    """The answer of one search: one candidate, or the honest list of candidates."""

    first: str | None = None  # first "new" candidate (culprit, or fix)
    candidates: list[str] = field(default_factory=list)
    last_old: str | None = None  # the adjacent "old" one, where known
    note: str = ""  # what the answer means, or why there is none, in one sentence
    #: the verdicts contradict each other or the history (e.g. a merge base is "new"):
    #: ``note`` says how; ``first`` is None
    inconsistent: bool = False

    @property
    def found(self) -> bool:
        return self.first is not None


class CampaignStatus(enum.Enum):
    RUNNING = "running"  # interrupted (or in progress): ``bisector resume`` continues it
    FOUND = "done"  # one commit / kernel named (a git culprit: and its verification passed)
    DOUBTFUL = "doubtful"  # the search ended at a commit, but verifying it failed: not an answer
    INCONCLUSIVE = "inconclusive"  # only candidates (skipped commits) are left
    MISMATCH = "mismatch"  # an endpoint, or upstream vs distro, does not behave as stated
    FAILED = "failed"  # could not run (bad refs, bad range, refused by git): see ``reason``


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommitInfo(_Model):
    sha: str
    subject: str
    author: str = ""
    date: str = ""

    @property
    def ref(self) -> str:
        """``b723748750ec ("subject")``: how kernel commit messages cite a commit."""
        return f'{self.sha[:12]} ("{self.subject}")'


class UpstreamMap(_Model):
    """Prebuilt kernels mapped to the upstream tags they are based on."""

    old_spec: str
    new_spec: str
    old_tag: str
    new_tag: str


class GitRange(_Model):
    olds: list[str]
    new: str
    old_shas: list[str]
    new_sha: str


class StageRecord(_Model):
    """A :class:`StageResult` as the campaign result stores it."""

    stage: Stage
    first: str | None = None
    candidates: list[str] = []
    last_old: str | None = None
    note: str = ""
    inconsistent: bool = False


class VerificationStatus(enum.Enum):
    """What re-testing a named culprit concluded (see :mod:`bisector.verification`)."""

    CONFIRMED = "confirmed"  # every check passed: present the culprit as the answer
    DOUBTFUL = "doubtful"  # a check failed (``flags`` says which): present it as doubtful
    NOT_RUN = "not-run"  # verification was not run (disabled, or no git culprit)


class VerificationRole(enum.Enum):
    """Which kernel of a culprit verification a series of runs tested."""

    CULPRIT = "culprit"  # the named commit: must be in the "new" state
    PARENT = "parent"  # a parent of it: must be in the "old" state
    REVERT = "revert"  # the culprit reverted on top of the new end: must be "old"


class RoleRuns(_Model):
    """The runs of one kernel in a verification, and what they say about its state."""

    role: VerificationRole
    commit: str
    #: the term (``good``/``bad``/``broken``/``fixed``) the culprit's claim needs here
    expected: str
    good: int = 0
    bad: int = 0
    skip: int = 0
    #: P(this kernel is in the ``expected`` state | every run of the verification)
    confidence: float = 0.0

    @property
    def runs(self) -> int:
        return self.good + self.bad + self.skip


class RevertStatus(enum.Enum):
    APPLIED = "applied"  # the revert commit was made and tested: see ``result``
    DOES_NOT_APPLY = "does-not-apply"  # later commits changed the same lines
    NOT_REVERTABLE = "not-revertable"  # a root commit, or a commit that changes nothing
    SKIPPED = "skipped"  # not asked for, not needed, or the culprit was already refuted


class RevertCheck(_Model):
    """The culprit reverted on top of the new end: it should be back in the old state."""

    status: RevertStatus
    #: the revert commit (kept under ``refs/bisector/reverts/``), when one was made
    commit: str | None = None
    #: the commit it was made on (the new end of the range)
    onto: str | None = None
    #: APPLIED: the term it tested as (the old one is expected), "undecided" or "untestable"
    result: str | None = None
    #: why it has this status, in one sentence
    note: str = ""


class CulpritVerification(_Model):
    """A git culprit re-tested (and statically checked) before it is presented as the answer.

    ``status`` is DOUBTFUL exactly when ``flags`` is not empty: each flag is one
    failed check with its reason, so a report can say why without re-deriving it.
    """

    status: VerificationStatus
    culprit: str
    #: P(the culprit is in the new state and every parent in the old state | all runs)
    confidence: float = 0.0
    #: the confidence the verification tried to reach
    target: float = 0.95
    runs: list[RoleRuns] = []
    revert: RevertCheck = RevertCheck(status=RevertStatus.SKIPPED)
    flags: list[str] = []
    summary: str = ""

    @classmethod
    def not_run(cls, culprit: str, why: str) -> CulpritVerification:
        return cls(status=VerificationStatus.NOT_RUN, culprit=culprit,
                   summary=f"culprit not verified: {why}")


class Likelihood(_Model):
    """One hypothesis of the Bayesian search: a first-bad commit, or None for "flake"."""

    commit: str | None
    probability: float
    #: posterior mean trigger rate under it (the false-failure rate for "flake")
    rate: float = 0.0


class PosteriorBin(_Model):
    """A stretch of the Bayesian search's candidates (oldest first): one column of the plot.

    Indices are positions in the candidate order (``git rev-list --topo-order
    --reverse``, the new end last), inclusive; ``commit`` is the first one's sha and
    ``subject`` its subject, shown in the plot's tooltips (escaped there: it is a
    stranger's text).
    """

    first: int
    last: int
    commit: str
    subject: str = ""


class PosteriorRun(_Model):
    """One run that fed the Bayesian posterior, and where the mass was after it.

    A bisection step boots a kernel once and runs the reproducer ``repeat`` times;
    each of those iterations is one run of the engine, so ``iteration`` says which.
    """

    #: the git-stage step (1-based, as the progress lines number them) it belongs to
    step: int
    commit: str
    #: GOOD or BAD: a SKIP carries no information and does not appear here
    verdict: Verdict
    #: which iteration of its step (1-based)
    iteration: int = 1
    #: posterior mass of each of :attr:`PosteriorHistory.bins` after this run
    mass: list[float]
    #: posterior probability of "no culprit: the failures were flakes" after this run
    flake: float
    #: the top hypothesis after this run (None: flake) and its probability
    top: str | None
    top_probability: float


class PosteriorHistory(_Model):
    """The Bayesian search's posterior after every run, binned over the range: the
    evidence behind its answer, compact enough to store with the result (at most
    64 bins per run) and to draw as a heat map (:mod:`bisector.plot`)."""

    candidates: int
    bins: list[PosteriorBin]
    runs: list[PosteriorRun] = []


class CampaignResult(_Model):
    """What a campaign ended with; stored as JSON, read back with :meth:`model_validate`."""

    campaign_id: int
    status: CampaignStatus
    terms_old: str = "good"
    terms_new: str = "bad"
    find_fix: bool = False
    stages: list[StageRecord] = []
    #: the named commit (git stage FOUND)
    culprit: CommitInfo | None = None
    #: the kernels around the answer of a list stage, and what they are upstream
    first_kernel: str | None = None
    last_old_kernel: str | None = None
    first_upstream: str | None = None
    last_old_upstream: str | None = None
    #: which kernels a list stage walked, and why those (mainline vs stable, series)
    list_note: str = ""
    #: INCONCLUSIVE: what is left
    candidates: list[CommitInfo] = []
    candidate_kernels: list[str] = []
    #: MISMATCH / FAILED / INCONCLUSIVE: why, in one paragraph
    reason: str = ""
    upstream: UpstreamMap | None = None
    range: GitRange | None = None
    bisect_log: str = ""
    #: the git culprit re-tested and checked (None: no git culprit, or an older result)
    verification: CulpritVerification | None = None
    #: how the git stage searched: plain (git bisect) or bayes; bayes' top hypotheses
    strategy: str = "plain"
    #: why the strategy changed mid-campaign (auto: repeats disagreed), if it did
    strategy_note: str = ""
    hypotheses: list[Likelihood] = []
    #: the git stage's parallelism: testers (Dask workers) and rounds it took
    workers: int = 1
    rounds: int = 0
    #: bayes: the posterior after every run (None: plain, or a result stored before it)
    posterior: PosteriorHistory | None = None

    @property
    def terms(self) -> Terms:
        return Terms(self.terms_old, self.terms_new, self.find_fix)
