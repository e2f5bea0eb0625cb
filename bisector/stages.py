"""The stages of a campaign, each a function of its own.

* :func:`verify` — test the endpoints (all the "old" ones and the "new" one)
  before searching: a bisection between endpoints that do not behave as
  stated names a wrong commit.
* :func:`list_stage` — binary search over a prebuilt source's ordered list.
* :func:`map_upstream` — the adjacent prebuilt pair → the upstream tags they
  are based on, for the git stage.
* :func:`git_stage` — ``git bisect`` between commits.

Each takes a :class:`StageContext` (the campaign: how to test a candidate,
where progress goes) so the stages can be read, and tested, one at a time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import kernel as kernels
from .errors import UserError
from .git import git
from .kernel.gitbuild import GitBuildSource
from .outcomes import CulpritVerification, Stage, StageResult, Step, Terms, UpstreamMap
from .search import Bisector, GitBisection, Handler, ListBisection
from .verification import VerifyPolicy, compiled_sources, verify_culprit


class StageContext(Protocol):
    terms: Terms
    handler: Handler

    @property
    def width(self) -> int:
        """How many candidates can be tested at once (Dask workers; 1 in-process)."""
        ...

    def test_many(self, stage: Stage, candidates: list[str]) -> list[Step]:
        """Test (or recall) several candidates at once; all recorded, in order."""
        ...

    def test(self, stage: Stage, candidate: str) -> Step:
        """Test (or recall from the memo) one candidate; the step is recorded."""
        ...

    def retest(self, stage: Stage, candidate: str) -> Step:
        """Test one candidate again (never from the memo); the step is recorded."""
        ...


def verify(ctx: StageContext, olds: Sequence[tuple[str, str]], new: tuple[str, str]
           ) -> str | None:
    """Test each ``(candidate, name)`` endpoint; return why one misbehaves, or None."""
    wanted = [(c, n, ctx.terms.old_verdict) for c, n in olds]
    wanted.append((new[0], new[1], ctx.terms.new_verdict))
    together: dict[str, Step] = {}
    if ctx.width > 1:  # workers free: the endpoints in one round
        cands = [c for c, _, _ in wanted]
        for c in cands:
            ctx.handler.step_started(Stage.VERIFY, 0, c, 0)
        together = dict(zip(cands, ctx.test_many(Stage.VERIFY, cands), strict=True))
    for cand, name, want in wanted:
        if cand in together:
            step = together[cand]
        else:
            ctx.handler.step_started(Stage.VERIFY, 0, cand, 0)
            step = ctx.test(Stage.VERIFY, cand)
        ctx.handler.step_finished(Stage.VERIFY, 0, step)
        if step.verdict is not want:
            return (f"{name} should be {want.value.upper()} "
                    f"but is {step.verdict.value.upper()}: {step.reason}")
    return None


@dataclass(frozen=True)
class ListPlan:
    """A list bisection's kernels, checked before the campaign starts, and why these."""

    prefix: str
    items: list[kernels.KernelEntry]
    note: str = ""


#: how a source's list relates to upstream history.  "mainline": the list mixes
#: Linus's releases/rcs with stable point releases (side branches with backports);
#: "distro": every kernel is a point release of one upstream series (Debian's ABIs)
LINEAGE: dict[str, str] = {"ubuntu-mainline": "mainline"}


def _series(upstream: str | None) -> tuple[int, int] | None:
    m = re.match(r"v?(\d+)\.(\d+)", upstream or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _is_point(upstream: str | None) -> bool:
    """``v6.1.190`` (a stable point release), not ``v6.1`` or ``v6.2-rc3``."""
    return bool(re.match(r"v?\d+\.\d+\.\d+", upstream or ""))


def plan_list(old: str, new: str, across_series: bool = False) -> ListPlan:
    """The kernels from ``old`` to ``new`` a list bisection may walk (UserError if none).

    GOOD/BAD is monotonic only along one line of history: within one upstream
    series (rcs, the release, its stable point releases), or along mainline
    (releases and rcs).  Across series, a mainline list keeps only mainline
    kernels (a point-release endpoint is replaced by its series' release, and
    verified as such); a distro list refuses unless ``across_series``.
    """
    prefix = old.split(":", 1)[0]
    if new.split(":", 1)[0] != prefix:
        raise UserError(f"{old} and {new} come from different sources; a list bisection "
                        "needs one ordered list")
    entries = kernels.listing(prefix, include=(old, new))
    specs = [e.spec for e in entries]
    for s in (old, new):
        if s not in specs:
            raise UserError(f"{s}: not in the {prefix} list "
                            f"(see 'bisector kernels list {prefix}')")
    i, j = specs.index(old), specs.index(new)
    if i >= j:
        raise UserError(f"{old} is not older than {new} in the {prefix} list")
    window = entries[i:j + 1]
    a, b = window[0], window[-1]
    sa, sb = _series(a.upstream), _series(b.upstream)
    if sa is None or sb is None or sa == sb:
        where = f"upstream series {sa[0]}.{sa[1]}" if sa and sa == sb else "the source's order"
        return ListPlan(prefix, window, f"{len(window)} kernels along {where}")
    if LINEAGE.get(prefix) == "mainline":
        return _mainline_plan(prefix, entries, window)
    if not across_series:
        raise UserError(f"{old} ({a.upstream}) and {new} ({b.upstream}) are in different "
                        "upstream series, whose point releases carry different backports: "
                        "bisect within one series, or pass --across-series")
    return ListPlan(prefix, window, f"{len(window)} kernels across upstream series "
                                    f"{sa[0]}.{sa[1]} … {sb[0]}.{sb[1]} (--across-series)")


def _mainline_plan(prefix: str, entries: list[kernels.KernelEntry],
                   window: list[kernels.KernelEntry]) -> ListPlan:
    by_upstream = {e.upstream: e for e in entries}
    ends = []
    notes = []
    for end in (window[0], window[-1]):
        if _is_point(end.upstream):
            sr = _series(end.upstream)
            assert sr is not None
            base = by_upstream.get(f"v{sr[0]}.{sr[1]}")
            if base is None:
                raise UserError(f"{end.spec} is a stable point release and its series' "
                                f"release v{sr[0]}.{sr[1]} is not in the {prefix} list")
            notes.append(f"{end.spec} → {base.spec}")
            end = base
        ends.append(end)
    lo, hi = entries.index(ends[0]), entries.index(ends[1])
    items = [ends[0], *[e for e in entries[lo + 1:hi] if not _is_point(e.upstream)], ends[1]]
    note = (f"{len(items)} mainline kernels (releases and rcs, {ends[0].spec} … {ends[1].spec});"
            " stable point releases are left out: they carry backports on side branches")
    if notes:
        note += "; endpoints replaced by their series' release: " + ", ".join(notes)
    return ListPlan(prefix, items, note)


def list_stage(ctx: StageContext, plan: ListPlan, do_verify: bool) -> StageResult | str:
    """Verify the endpoints, then bisect the list; a string explains a mismatch."""
    items = [e.spec for e in plan.items]
    ctx.handler.message(f"list stage: {plan.note}")
    if do_verify:
        why = verify(ctx, [(items[0], f"endpoint {items[0]}")],
                     (items[-1], f"endpoint {items[-1]}"))
        if why is not None:
            return why
    bis = ListBisection(items, ctx.terms)
    return Bisector(lambda st, c: ctx.test(st, c), ctx.handler).run(Stage.LIST, bis)


def map_upstream(tree: Path, lst: StageResult) -> UpstreamMap | str:
    """The upstream tags of the kernels around the list stage's answer (a string: why not)."""
    assert lst.first is not None and lst.last_old is not None
    tags = {}
    for role, spec in (("old", lst.last_old), ("new", lst.first)):
        up = kernels.resolve(spec).upstream
        if not up:
            return f"{spec}: its upstream version is unknown; cannot map it to a tag"
        tags[role] = up
    if tags["old"] == tags["new"]:
        return (f"{lst.last_old} and {lst.first} are both based on upstream {tags['old']}: "
                "the change is in the distro's own patches or config, not upstream")
    for t in tags.values():
        if git(tree, "rev-parse", "--verify", "--quiet", f"{t}^{{commit}}",
               check=False).returncode != 0:
            raise UserError(f"the tree {tree} has no tag {t} (needed to bisect upstream "
                            f"between {tags['old']} and {tags['new']}); fetch the tags first")
    return UpstreamMap(old_spec=lst.last_old, new_spec=lst.first, old_tag=tags["old"],
                       new_tag=tags["new"])


def git_stage(ctx: StageContext, worktree: Path, old_shas: Sequence[str], new_sha: str
              ) -> tuple[StageResult, str, int]:
    """``git bisect`` from the old commits to the new one: the answer, the bisect log,
    and the rounds it took (k commits per round with k workers: multisection)."""
    gb = GitBisection(worktree, list(old_shas), new_sha, ctx.terms)
    gb.start()
    try:
        loop = Bisector(lambda st, c: ctx.test(st, c), ctx.handler, many=ctx.test_many,
                        width=ctx.width)
        res = loop.run(Stage.GIT, gb)
        ctx.handler.message(f"git stage: {loop.rounds} round(s) of up to {ctx.width} "
                            f"commit(s) tested at once")
        return res, gb.log(), loop.rounds
    finally:
        gb.reset()



def confirm_culprit(ctx: StageContext, src: GitBuildSource, culprit: str, new_end: str,
                    enabled: bool, flaky: bool = False) -> CulpritVerification:
    """Re-test the culprit, its parent(s) and its revert on the new end, and check it
    the way syzbot does (merge, release, no-op, unbuilt change): see
    :mod:`bisector.verification`.  A failed check makes the answer doubtful."""
    if not enabled:
        return CulpritVerification.not_run(culprit, "--no-verify-culprit")

    def step(sha: str, fresh: bool) -> Step:
        ctx.handler.step_started(Stage.CONFIRM, 0, sha, 0)
        s = ctx.retest(Stage.CONFIRM, sha) if fresh else ctx.test(Stage.CONFIRM, sha)
        ctx.handler.step_finished(Stage.CONFIRM, 0, s)
        return s

    def bzimage_hash(sha: str) -> str | None:
        image = src.built_image(sha)
        return hashlib.sha256(image.read_bytes()).hexdigest() if image is not None else None

    # what the build compiled; unknown (no objects yet) is not "nothing was compiled"
    compiled = compiled_sources(src.build_dir) if src.build_dir.is_dir() else set()
    ctx.handler.message(f"verifying the culprit {culprit[:12]}: re-testing it, its "
                        "parent(s) and its revert")
    # a flaky bug needs more runs before a pass means "good": 6 passes at p = 0.5 still
    # leave a 1-in-64 chance that the kernel has the bug
    policy = VerifyPolicy(max_runs=16) if flaky else VerifyPolicy()
    return verify_culprit(src.tree, culprit, ctx.terms,
                          test=lambda sha: step(sha, False), retest=lambda sha: step(sha, True),
                          new_end=new_end, artifact_hash=bzimage_hash,
                          built_files=(lambda: compiled) if compiled else None,
                          policy=policy, say=ctx.handler.message)
