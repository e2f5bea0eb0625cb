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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import kernel as kernels
from .errors import UserError
from .git import git
from .outcomes import Stage, StageResult, Step, Terms, UpstreamMap
from .search import Bisector, GitBisection, Handler, ListBisection


class StageContext(Protocol):
    terms: Terms
    handler: Handler

    def test(self, stage: Stage, candidate: str) -> Step:
        """Test (or recall from the memo) one candidate; the step is recorded."""
        ...


def verify(ctx: StageContext, olds: Sequence[tuple[str, str]], new: tuple[str, str]
           ) -> str | None:
    """Test each ``(candidate, name)`` endpoint; return why one misbehaves, or None."""
    wanted = [(c, n, ctx.terms.old_verdict) for c, n in olds]
    wanted.append((new[0], new[1], ctx.terms.new_verdict))
    for cand, name, want in wanted:
        ctx.handler.step_started(Stage.VERIFY, 0, cand, 0)
        step = ctx.test(Stage.VERIFY, cand)
        ctx.handler.step_finished(Stage.VERIFY, 0, step)
        if step.verdict is not want:
            return (f"{name} should be {want.value.upper()} "
                    f"but is {step.verdict.value.upper()}: {step.reason}")
    return None


@dataclass(frozen=True)
class ListPlan:
    """A list bisection's kernels, checked before the campaign starts."""

    prefix: str
    items: list[kernels.KernelEntry]


def plan_list(old: str, new: str) -> ListPlan:
    """The kernels from ``old`` to ``new`` in their source's order (UserError if not)."""
    prefix = old.split(":", 1)[0]
    if new.split(":", 1)[0] != prefix:
        raise UserError(f"{old} and {new} come from different sources; a list bisection "
                        "needs one ordered list")
    entries = kernels.listing(prefix)
    specs = [e.spec for e in entries]
    for s in (old, new):
        if s not in specs:
            raise UserError(f"{s}: not in the {prefix} list "
                            f"(see 'bisector kernels list {prefix}')")
    i, j = specs.index(old), specs.index(new)
    if i >= j:
        raise UserError(f"{old} is not older than {new} in the {prefix} list")
    return ListPlan(prefix, entries[i:j + 1])


def list_stage(ctx: StageContext, plan: ListPlan, do_verify: bool) -> StageResult | str:
    """Verify the endpoints, then bisect the list; a string explains a mismatch."""
    items = [e.spec for e in plan.items]
    ctx.handler.message(f"list stage: {len(items)} kernels from {items[0]} to {items[-1]}")
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
              ) -> tuple[StageResult, str]:
    """``git bisect`` from the old commits to the new one: the answer and the bisect log."""
    gb = GitBisection(worktree, list(old_shas), new_sha, ctx.terms)
    gb.start()
    try:
        res = Bisector(lambda st, c: ctx.test(st, c), ctx.handler).run(Stage.GIT, gb)
        return res, gb.log()
    finally:
        gb.reset()

