"""Culprit verification: re-test the commit a git bisection named before calling it the answer.

A wrong culprit is the worst output bisector can give (a ``Fixes:`` line that
blames an innocent commit costs its author and the maintainers more than an
honest "inconclusive").  A bisection takes one verdict per commit; a single
flaky run, or a skipped commit, is enough to move its answer.  So after a git
bisection names ``C`` (the first *new* commit: first BAD, or with
``--find-fix`` first fixed), :func:`verify_culprit`

1. re-tests ``C`` (it must be in the new state) and each parent of it (each
   must be in the old state), repeating runs until a confidence target is
   reached or a run budget is spent (:class:`VerifyPolicy`);
2. reverts ``C`` on top of the new end of the range (plumbing only, never the
   user's checkout: :func:`revert_commit`), and tests that: it should be back
   in the old state;
3. flags culprits that cannot be right, as syzbot does (``IsRelease``,
   ``NoopChange`` in syzkaller's pkg/bisect): a merge, a release commit, a
   commit whose kernel is identical to its parent's, a commit touching only
   files this configuration does not build (:func:`culprit_flags`).

It returns a :class:`~bisector.outcomes.CulpritVerification`: DOUBTFUL as soon
as one check fails (``flags`` says which and why), so the campaign can present
the commit as a suspect instead of as the answer.

The confidence model (:func:`posterior`)
----------------------------------------
Each tested kernel either *has the bug* or not.  In a run, a kernel with the
bug shows it (verdict BAD) with an unknown probability ``p`` — one ``p`` for
every kernel of the verification: same bug, same reproducer — and a kernel
without it shows it with a small ``eps`` (another crash read as the bug).
``p`` has a mixture prior: with weight ``reliable_prior`` the reproducer is
reliable (``p = 1 - eps``), otherwise ``p`` is uniform on (0, 1).  A priori each
kernel has the bug with probability 1/2, independently: the bisection's claim
gets no credit, its own verdicts enter as the first run of each kernel.  SKIP
runs carry no information (they still count against the budget).  Regression
hunting: "new" = has the bug; ``--find-fix``: "old" (broken) = has the bug.

``confidence`` = P(C is new and every parent is old | the runs of C and its
parents).  With the defaults, two agreeing runs of each (0.975) reach the 0.95
target, one of each (0.88) does not; a disagreeing run puts the uniform-``p``
branch in play, and more runs are needed to rule out "the parent has the bug
too and missed it" (a culprit showing the bug in one run of two is confirmed
after about 3 culprit and 5 parent runs).  The revert is judged on every run:
P(revert is old | all runs) — its GOODs mean something only next to the
culprit's BADs, which say how often the bug shows.

Runs are sequential: each kernel gets ``min_runs``, then, while a claim is
undecided (its probability neither >= target nor <= 1 - target), the kernel
whose expected state is least certain is run again, at most ``max_runs`` each.
The first run of each kernel goes through ``test`` (the campaign's memo: the
bisection's verdict, or a step recorded before a crash); the others through
``retest``, which must run the kernel again.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .git import git, git_bytes, out
from .outcomes import (
    CulpritVerification,
    RevertCheck,
    RevertStatus,
    RoleRuns,
    Step,
    Terms,
    VerificationRole,
    VerificationStatus,
)
from .verdict import Verdict

__all__ = ["VerifyPolicy", "compiled_sources", "culprit_flags", "noop_flag", "posterior",
           "revert_commit", "verify_culprit"]

#: test one commit (full sha) once: GOOD / BAD / SKIP (user and infra errors raise)
Tester = Callable[[str], Step]

#: where revert commits are kept: git gc keeps them, a resumed campaign finds the same ids
REVERT_REFS = "refs/bisector/reverts"

#: fixed identity and dates: the same revert on the same commit is the same commit id,
#: so a resumed campaign's memo recalls its test instead of building it again
_COMMIT_ENV = {"GIT_AUTHOR_NAME": "bisector", "GIT_AUTHOR_EMAIL": "bisector@localhost",
               "GIT_COMMITTER_NAME": "bisector", "GIT_COMMITTER_EMAIL": "bisector@localhost",
               "GIT_AUTHOR_DATE": "@0 +0000", "GIT_COMMITTER_DATE": "@0 +0000"}


@dataclass(frozen=True)
class VerifyPolicy:
    """How hard to try: the target, the run budget and the noise model's constants."""

    target: float = 0.95
    #: runs of each kernel before judging (the first may be the bisection's own verdict,
    #: which chose this commit: it is not independent evidence on its own)
    min_runs: int = 2
    #: runs of each kernel at most: what a flaky or untestable kernel may cost
    max_runs: int = 6
    #: P(a run shows the bug | the kernel does not have it)
    eps: float = 0.01
    #: prior weight of "the reproducer is reliable" (p = 1 - eps) against "p is uniform"
    reliable_prior: float = 0.5
    #: points of the numerical integral over the uniform p
    grid: int = 400

    def __post_init__(self) -> None:
        if not 0.5 < self.target < 1 or not 1 <= self.min_runs <= self.max_runs \
                or not 0 < self.eps < 0.5 or not 0 <= self.reliable_prior <= 1:
            raise ValueError(f"inconsistent verification policy: {self}")


# ---------------------------------------------------------------- the confidence model
def _logsumexp(xs: Sequence[float]) -> float:
    top = max(xs)
    if top == -math.inf:
        return top
    return top + math.log(math.fsum(math.exp(x - top) for x in xs))


def posterior(counts: Sequence[tuple[int, int]], want: Mapping[int, bool],
              policy: VerifyPolicy | None = None) -> float:
    """P(kernel ``i`` has the bug == ``want[i]`` for every ``i`` in ``want`` | the runs).

    ``counts[i]`` is ``(bad, good)``: kernel ``i``'s runs that showed the bug and
    that did not (SKIPs left out).  Kernels not in ``want`` are marginalised; all
    of them inform the shared ``p`` (see the module docstring for the model).
    """
    pol = policy or VerifyPolicy()
    log_eps, log_1m_eps = math.log(pol.eps), math.log1p(-pol.eps)
    half = math.log(0.5)

    def log_joint(p_log: float, q_log: float, constrained: bool) -> float:
        """log P(runs, constrained states | p) for one p (p_log = log p, q_log = log 1-p)."""
        total = 0.0
        for i, (bad, good) in enumerate(counts):
            with_bug = half + bad * p_log + good * q_log
            without = half + bad * log_eps + good * log_1m_eps
            if constrained and i in want:
                total += with_bug if want[i] else without
            else:
                total += _logsumexp([with_bug, without])
        return total

    def log_evidence(constrained: bool) -> float:
        parts = []
        if pol.reliable_prior > 0:
            parts.append(math.log(pol.reliable_prior) + log_joint(log_1m_eps, log_eps,
                                                                  constrained))
        if pol.reliable_prior < 1:
            grid = [(k + 0.5) / pol.grid for k in range(pol.grid)]
            values = [log_joint(math.log(p), math.log1p(-p), constrained) for p in grid]
            parts.append(math.log1p(-pol.reliable_prior) + _logsumexp(values)
                         - math.log(pol.grid))
        return _logsumexp(parts)

    return min(1.0, math.exp(log_evidence(True) - log_evidence(False)))


# ---------------------------------------------------------------- git facts
def _parents(repo: Path, sha: str) -> list[str]:
    return out(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]


def _changed_files(repo: Path, sha: str, parents: Sequence[str]) -> list[str]:
    """Paths the commit changes against its first parent (all paths for a root commit)."""
    base = [parents[0], sha] if parents else ["--root", sha]
    listing = out(repo, "diff-tree", "-r", "--no-commit-id", "--name-only", "--no-renames",
                  *base)
    return [ln for ln in listing.splitlines() if ln]


_RELEASE_TAG = re.compile(r"^v\d+\.\d+(\.\d+)?(-rc\d+)?$")
_RELEASE_SUBJECT = re.compile(r"^Linux \d+\.\d+")
_VERSION_LINE = re.compile(r"^[+-](VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION|NAME)\s*=")

#: never compiled into a kernel, whatever the config
_UNBUILT_PREFIXES = {"Documentation/": "documentation", "tools/": "tools (userspace)",
                     "LICENSES/": "licence texts"}
_UNBUILT_FILES = {"MAINTAINERS", "CREDITS", "README", "COPYING", ".mailmap", ".clang-format",
                  ".cocciconfig", ".get_maintainer.ignore", "scripts/checkpatch.pl",
                  "scripts/get_maintainer.pl", "scripts/spelling.txt"}
_UNBUILT_NAMES = {".gitignore", ".gitattributes"}


def _release_reasons(repo: Path, sha: str, parents: Sequence[str], files: Sequence[str]
                     ) -> list[str]:
    reasons = []
    tags = [t for t in out(repo, "tag", "--points-at", sha).split() if _RELEASE_TAG.match(t)]
    if tags:
        reasons.append(f"tagged {', '.join(tags)}")
    subject = out(repo, "log", "-1", "--format=%s", sha)
    if _RELEASE_SUBJECT.match(subject):
        reasons.append(f"subject {subject!r}")
    if parents and files == ["Makefile"]:
        diff = out(repo, "diff-tree", "-p", "-U0", "--no-commit-id", parents[0], sha, "--",
                   "Makefile")
        changed = [ln for ln in diff.splitlines()
                   if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
        if changed and all(_VERSION_LINE.match(ln) for ln in changed):
            reasons.append("it only changes the Makefile's version lines")
    return reasons


def _unbuilt_reason(path: str, arch: str, built: Callable[[], set[str]] | None) -> str | None:
    """Why ``path`` is not compiled into this kernel, or None when it may be."""
    for prefix, what in _UNBUILT_PREFIXES.items():
        if path.startswith(prefix):
            return what
    if path in _UNBUILT_FILES or path.rsplit("/", 1)[-1] in _UNBUILT_NAMES:
        return "not a build input"
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "arch" and parts[1] != arch:
        return f"arch/{parts[1]}, not {arch}"
    if path.endswith(".c") and built is not None and path not in built():
        return f"no {path[:-2]}.o in the build directory"
    return None


def culprit_flags(repo: Path, sha: str, *, built_files: Callable[[], set[str]] | None = None,
                  arch: str = "x86") -> list[str]:
    """Why ``sha`` cannot be (or is unlikely to be) a real culprit, from git alone.

    One string per failed check, ``"<check>: <reason>"``: ``root``, ``merge``,
    ``release`` (a ``vX.Y[.Z][-rcN]`` tag on it, a ``Linux X.Y`` subject, or only
    the Makefile's VERSION/PATCHLEVEL/SUBLEVEL/EXTRAVERSION/NAME lines changed),
    ``empty`` (no file changed), ``unbuilt`` (every changed file is outside the
    build: Documentation/, tools/, LICENSES/, arch/ other than ``arch``, files
    such as MAINTAINERS, or — with ``built_files``, the repository paths of the
    .c files this config compiles — a .c file that is not compiled).  Headers,
    Makefiles and Kconfig files are assumed built: the check errs towards not
    flagging.  A merge is judged on its diff against its first parent.
    """
    parents = _parents(repo, sha)
    flags = []
    if not parents:
        flags.append("root: a root commit has no parent to compare it with")
    if len(parents) > 1:
        flags.append(f"merge: a merge of {len(parents)} parents; a merge rarely brings a "
                     "change of its own — a flaky verdict or a skipped commit inside the "
                     "merged branch usually leads a bisection here")
    files = _changed_files(repo, sha, parents)
    reasons = _release_reasons(repo, sha, parents, files)
    if reasons:
        flags.append(f"release: a release commit ({'; '.join(reasons)}) does not change "
                     "the kernel's behaviour")
    if not files:
        flags.append("empty: the commit changes no file")
        return flags
    cache: dict[str, set[str]] = {}

    def built() -> set[str]:  # built_files may walk a whole build tree: once at most
        if "built" not in cache:
            assert built_files is not None
            cache["built"] = built_files()
        return cache["built"]

    why = [_unbuilt_reason(f, arch, built if built_files is not None else None)
           for f in files]
    if all(why):
        shown = ", ".join(f"{f} ({w})" for f, w in list(zip(files, why, strict=True))[:4])
        more = f" and {len(files) - 4} more" if len(files) > 4 else ""
        flags.append(f"unbuilt: it only changes files this config does not build: "
                     f"{shown}{more}")
    return flags


def noop_flag(sha: str, parents: Sequence[str],
              artifact_hash: Callable[[str], str | None]) -> str | None:
    """``noop: …`` when the kernel built from ``sha`` is identical to a parent's.

    Then the two kernels cannot behave differently: their verdicts differ by
    chance (syzkaller's NoopChange).  Unknown hashes (None) prove nothing.
    """
    mine = artifact_hash(sha)
    if mine is None:
        return None
    for parent in parents:
        theirs = artifact_hash(parent)
        if theirs is not None and theirs == mine:
            return (f"noop: the kernel built from it is identical to its parent "
                    f"{parent[:12]}'s ({mine[:16]}): their verdicts can differ only by chance")
    return None


def compiled_sources(build_dir: Path) -> set[str]:
    """The .c files (repository paths) with an object in a kbuild ``O=`` directory.

    A ready ``built_files`` for :func:`culprit_flags`.  The directory keeps the
    objects of every commit built there, so this is a superset of what the
    culprit's build compiled: a .c file is called unbuilt only if no build made
    it, which errs towards not flagging.
    """
    return {str(o.relative_to(build_dir).with_suffix(".c")) for o in build_dir.rglob("*.o")}


# ---------------------------------------------------------------- the revert
def revert_commit(repo: Path, culprit: str, onto: str) -> RevertCheck:
    """Commit "revert ``culprit``" on top of ``onto`` without touching any checkout.

    Plumbing only, like :meth:`~bisector.kernel.gitbuild.GitBuildSource.commit_patch`:
    a temporary index is loaded with ``onto``'s tree (``git read-tree``), the
    culprit's diff against its first parent (``git diff-tree -p --binary
    --full-index``: plumbing, so no diff.external, textconv or noprefix setting
    of the user's can change it) is applied in reverse with ``git apply --cached
    -R --3way``, and ``git commit-tree`` makes the commit, kept under
    :data:`REVERT_REFS`.  ``--3way`` falls back to a three-way merge from the
    blobs the full index lines name, so later commits that moved the context
    (but did not change the same lines) do not stop the revert, as they would
    not stop ``git revert``.  ``git revert --no-commit`` in a scratch worktree
    would need a checkout of the whole tree (minutes for a kernel, and
    worktree metadata in the user's repository) for the same result.

    A merge is reverted against its first parent (``git revert -m 1``: what
    the merge brought into the mainline).  Conflicts give DOES_NOT_APPLY, a
    root commit or an empty diff NOT_REVERTABLE: statuses, never exceptions.
    """
    parents = _parents(repo, culprit)
    if not parents:
        return RevertCheck(status=RevertStatus.NOT_REVERTABLE, onto=onto,
                           note="a root commit has no parent to revert to")
    patch = git_bytes(repo, "diff-tree", "-p", "--binary", "--full-index", "--no-renames",
                      parents[0], culprit)
    if not patch.strip():
        return RevertCheck(status=RevertStatus.NOT_REVERTABLE, onto=onto,
                           note="the commit changes no file: there is nothing to revert")
    subject = out(repo, "log", "-1", "--format=%s", culprit)
    with tempfile.TemporaryDirectory(prefix="bisector-revert-") as tmp:
        patch_file = Path(tmp) / "culprit.patch"
        patch_file.write_bytes(patch)
        env = dict(_COMMIT_ENV, GIT_INDEX_FILE=str(Path(tmp) / "index"))
        git(repo, "read-tree", onto, env=env, timeout=300)
        applied = git(repo, "apply", "--cached", "-R", "--3way", "--whitespace=nowarn",
                      patch_file, env=env, timeout=300, check=False)
        if applied.returncode != 0:
            said = (applied.stdout + applied.stderr).splitlines()  # git 2.39: all on stderr
            conflicts = [ln[2:] for ln in said if ln.startswith("U ")]
            errors = [ln for ln in said if ln.startswith("error:")]
            why = (f"conflicts in {', '.join(conflicts[:5])}" if conflicts
                   else errors[-1] if errors else f"git apply exited {applied.returncode}")
            return RevertCheck(status=RevertStatus.DOES_NOT_APPLY, onto=onto,
                               note=f"the revert of {culprit[:12]} does not apply on "
                                    f"{onto[:12]}: {why}")
        tree = out(repo, "write-tree", env=env, timeout=300)
    how = f", reversing changes made to {parents[0]}" if len(parents) > 1 else ""
    message = (f'Revert "{subject}"\n\nThis reverts commit {culprit}{how}.\n\n'
               "Made by bisector to verify a bisection; it is on no branch.\n")
    sha = out(repo, "commit-tree", tree, "-p", onto, "-m", message, env=_COMMIT_ENV,
              timeout=300)
    git(repo, "update-ref", f"{REVERT_REFS}/{culprit[:12]}-on-{onto[:12]}", sha)
    against = " against its first parent" if len(parents) > 1 else ""
    return RevertCheck(status=RevertStatus.APPLIED, commit=sha, onto=onto,
                       note=f"{culprit[:12]} reverted{against} on top of {onto[:12]}")


# ---------------------------------------------------------------- the runs
@dataclass
class _Kernel:
    """One kernel of the verification and its runs so far."""

    role: VerificationRole
    sha: str
    expected_new: bool
    #: does this kernel have the bug if it is in its expected state
    buggy_if_expected: bool
    verdicts: list[Verdict] = field(default_factory=list)

    def count(self, verdict: Verdict) -> int:
        return sum(v is verdict for v in self.verdicts)

    @property
    def counts(self) -> tuple[int, int]:
        return self.count(Verdict.BAD), self.count(Verdict.GOOD)


@dataclass
class _Runs:
    """The kernels, the testers and the policy: runs one kernel at a time, judges claims."""

    test: Tester
    retest: Tester
    policy: VerifyPolicy
    say: Callable[[str], None] | None
    kernels: list[_Kernel] = field(default_factory=list)

    def add(self, role: VerificationRole, sha: str, terms: Terms, expected_new: bool
            ) -> _Kernel:
        k = _Kernel(role, sha, expected_new, buggy_if_expected=expected_new != terms.find_fix)
        self.kernels.append(k)
        return k

    def claim(self, group: Sequence[_Kernel]) -> float:
        """P(every kernel of ``group`` is in its expected state | the runs that bear on it).

        The culprit and its parents are judged on their own runs: the boundary
        claim is about them, and a revert's runs (which leave open "the revert
        has the bug and missed it") would only blur it.  The revert is judged on
        every run: its GOODs mean something only with the culprit's BADs to say
        how often the bug shows.
        """
        judged = (self.kernels if any(k.role is VerificationRole.REVERT for k in group)
                  else [k for k in self.kernels if k.role is not VerificationRole.REVERT])
        index = {id(k): i for i, k in enumerate(judged)}
        want = {index[id(k)]: k.buggy_if_expected for k in group}
        return posterior([k.counts for k in judged], want, self.policy)

    def run(self, k: _Kernel) -> None:
        step = (self.retest if k.verdicts else self.test)(k.sha)
        k.verdicts.append(step.verdict)
        if self.say:
            self.say(f"verifying: {k.role.value} {k.sha[:12]} run {len(k.verdicts)}: "
                     f"{step.verdict.value}")

    def until_decided(self, claims: Sequence[Sequence[_Kernel]]) -> None:
        """Run until every claim is decided either way, or its kernels' budgets are spent."""
        pol = self.policy
        for group in claims:
            for k in group:
                while len(k.verdicts) < pol.min_runs:
                    self.run(k)
        while True:
            candidates: list[tuple[float, int, _Kernel]] = []
            for group in claims:
                if not 1 - pol.target < self.claim(group) < pol.target:
                    continue  # decided, either way
                each = [(self.claim([k]), n, k) for n, k in enumerate(group)]
                unsure = [c for c in each if c[0] < pol.target]
                todo = [c for c in unsure if len(c[2].verdicts) < pol.max_runs]
                # the others' runs help an unsure kernel only through p, i.e. only if it
                # has verdicts of its own: none for a parent that never builds
                if not todo and all(sum(c[2].counts) for c in unsure):
                    todo = [c for c in each if len(c[2].verdicts) < pol.max_runs]
                candidates += todo
            if not candidates:
                return
            # the kernel whose state is least certain: another run of it tells the most
            self.run(min(candidates, key=lambda c: c[:2])[2])

    def record(self, k: _Kernel, terms: Terms) -> RoleRuns:
        return RoleRuns(role=k.role, commit=k.sha,
                        expected=terms.new if k.expected_new else terms.old,
                        good=k.count(Verdict.GOOD), bad=k.count(Verdict.BAD),
                        skip=k.count(Verdict.SKIP), confidence=round(self.claim([k]), 4))


def _describe(r: RoleRuns) -> str:
    if r.good + r.bad == 0:
        return f"{r.role.value} {r.commit[:12]} could not be tested ({r.skip} SKIP)"
    return (f"{r.role.value} {r.commit[:12]} should be {r.expected}: "
            f"good {r.good}, bad {r.bad}, skip {r.skip}")


def _tally(r: RoleRuns, terms: Terms) -> str:
    """``parent good 2/2``: the runs in the expected state, of the runs that tested."""
    agreeing = r.good if terms.verdict_for(r.expected) is Verdict.GOOD else r.bad
    skipped = f" (+{r.skip} skip)" if r.skip else ""
    return f"{r.role.value} {r.expected} {agreeing}/{r.good + r.bad}{skipped}"


def verify_culprit(repo: Path, culprit: str, terms: Terms, *, test: Tester, retest: Tester,
                   new_end: str | None = None, revert: bool = True,
                   artifact_hash: Callable[[str], str | None] | None = None,
                   built_files: Callable[[], set[str]] | None = None,
                   policy: VerifyPolicy | None = None,
                   say: Callable[[str], None] | None = None) -> CulpritVerification:
    """Re-test and check the culprit ``culprit`` a git bisection of ``repo`` named.

    ``test(sha)`` may answer from the campaign's memo (it is asked once per
    kernel: the culprit, each parent, the revert commit); ``retest(sha)`` must
    test again.  Both return a :class:`~bisector.outcomes.Step`, build the
    commit like any other (the revert commit is an ordinary commit of
    ``repo``) and raise only for user and infrastructure errors.  ``new_end``
    is the new end of the bisected range, where the revert is made (no revert
    without it, or with ``revert=False``).  ``artifact_hash(sha)`` (a hash of
    the kernel built from ``sha``, None when unknown) is asked after the runs,
    for the culprit and its parents; ``built_files`` see :func:`culprit_flags`.
    """
    pol = policy or VerifyPolicy()
    sha = out(repo, "rev-parse", "--verify", f"{culprit}^{{commit}}")
    parents = _parents(repo, sha)
    flags = culprit_flags(repo, sha, built_files=built_files)
    runs = _Runs(test, retest, pol, say)
    boundary = [runs.add(VerificationRole.CULPRIT, sha, terms, expected_new=True)]
    boundary += [runs.add(VerificationRole.PARENT, p, terms, expected_new=False)
                 for p in parents]
    runs.until_decided([boundary])

    rev = RevertCheck(status=RevertStatus.SKIPPED, onto=new_end,
                      note="no revert asked for" if not revert else "no new end given")
    if revert and new_end is not None:
        if runs.claim(boundary) <= 1 - pol.target:
            rev.note = "not made: the re-tests already refute the culprit"
        elif parents and out(repo, "rev-parse", f"{new_end}^{{tree}}") \
                == out(repo, "rev-parse", f"{sha}^{{tree}}"):
            rev.note = (f"not needed: the new end has the culprit's tree, so its revert is "
                        f"the parent {parents[0][:12]}, tested above")
        else:
            rev = revert_commit(repo, sha, new_end)
    reverted: _Kernel | None = None
    if rev.status is RevertStatus.APPLIED and rev.commit is not None:
        reverted = runs.add(VerificationRole.REVERT, rev.commit, terms, expected_new=False)
        runs.until_decided([boundary, [reverted]])

    confidence = runs.claim(boundary)
    records = [runs.record(k, terms) for k in runs.kernels]
    if confidence < pol.target:
        unsure = [_describe(r) for r in records
                  if r.role is not VerificationRole.REVERT and r.confidence < pol.target]
        flags.insert(0, f"retest: confidence {confidence:.2f} < {pol.target} that "
                        f"{sha[:12]} is the first {terms.new} commit"
                        + (f" ({'; '.join(unsure)})" if unsure else ""))
    if reverted is not None:
        rev_rec = records[-1]
        if rev_rec.good + rev_rec.bad == 0:
            rev.result = "untestable"
        elif rev_rec.confidence >= pol.target:
            rev.result = terms.old
        elif rev_rec.confidence <= 1 - pol.target:
            rev.result = terms.new
        else:
            rev.result = "undecided"
        if rev.result in (terms.new, "undecided"):
            flags.append(f"revert: with {sha[:12]} reverted on top of the new end "
                         f"{(new_end or '')[:12]} the kernel is {rev.result}, not "
                         f"{terms.old} ({_describe(rev_rec)})")
    if artifact_hash is not None and parents:
        noop = noop_flag(sha, parents, artifact_hash)
        if noop:
            flags.append(noop)

    status = VerificationStatus.DOUBTFUL if flags else VerificationStatus.CONFIRMED
    what = f"the first {terms.new} commit"
    if flags:
        more = f" (+{len(flags) - 1} more)" if len(flags) > 1 else ""
        summary = f"{sha[:12]} is doubtful as {what}: {flags[0]}{more}"
    else:
        tallies = [_tally(r, terms) for r in records]
        if reverted is None and revert:
            tallies.append(f"revert {rev.status.value}: {rev.note}")
        summary = (f"{sha[:12]} confirmed as {what} (confidence {confidence:.2f}: "
                   f"{', '.join(tallies)})")
    return CulpritVerification(status=status, culprit=sha, confidence=round(confidence, 4),
                               target=pol.target, runs=records, revert=rev, flags=flags,
                               summary=summary)
