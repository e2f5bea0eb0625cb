"""Culprit verification on small real repositories, with scripted testers.

A commit's verdict comes from its tree (BAD when a file holds ``BUG``), so the
revert commit, which the test cannot know in advance, is judged like any
other; ``shows`` makes the reproducer flaky, ``override`` scripts one commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bisector import proc
from bisector.outcomes import (
    CampaignResult,
    CampaignStatus,
    CulpritVerification,
    RevertStatus,
    Stage,
    Step,
    Terms,
    VerificationRole,
    VerificationStatus,
)
from bisector.verdict import Verdict
from bisector.verification import (
    REVERT_REFS,
    VerifyPolicy,
    compiled_sources,
    culprit_flags,
    posterior,
    revert_commit,
    verify_culprit,
)
from tests.fakes.gitrepo import commit_files, empty_repo, git

G, B, S = Verdict.GOOD, Verdict.BAD, Verdict.SKIP
FIND_FIX = Terms.make(find_fix=True)


def net(**changed: str) -> str:
    """net.c: twelve lines, ``line5="BUG"`` changes one."""
    return "".join(f"int line{i}{' = ' + changed[f'line{i}'] if f'line{i}' in changed else ''};\n"
                   for i in range(1, 13))


MAKEFILE = ("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION =\nNAME = Curry Ramen\n"
            "\nall:\n\t@true\n")


@dataclass
class Tree:
    repo: Path
    base: str
    culprit: str
    tip: str


def regression(tmp_path: Path, *, after: dict[str, str | None] | None = None) -> Tree:
    """base, ip change, culprit (net.c line 5 gets BUG), ``after`` (or an ip change), doc change."""
    repo = empty_repo(tmp_path / "linux")
    base = commit_files(repo, "base", {"net.c": net(), "ip.c": "int ip;\n", "Makefile": MAKEFILE,
                                       "Documentation/net.rst": "net\n"})
    commit_files(repo, "ip: one", {"ip.c": "int ip = 1;\n"})
    culprit = commit_files(repo, "net: break it", {"net.c": net(line5="BUG")})
    commit_files(repo, "later", after or {"ip.c": "int ip = 2;\n"})
    tip = commit_files(repo, "docs: more", {"Documentation/net.rst": "net net\n"})
    return Tree(repo, base, culprit, tip)


def fixed_later(tmp_path: Path) -> Tree:
    """The bug is in base; ``culprit`` fixes it (for --find-fix)."""
    repo = empty_repo(tmp_path / "linux")
    base = commit_files(repo, "base", {"net.c": net(line5="BUG"), "ip.c": "int ip;\n"})
    commit_files(repo, "ip: one", {"ip.c": "int ip = 1;\n"})
    fix = commit_files(repo, "net: fix it", {"net.c": net()})
    tip = commit_files(repo, "ip: two", {"ip.c": "int ip = 2;\n"})
    return Tree(repo, base, fix, tip)


def parent(repo: Path, sha: str) -> str:
    return git(repo, "rev-parse", f"{sha}^")


@dataclass
class Runs:
    """The campaign's ``test`` (memo-aware) and ``retest`` (always runs), scripted."""

    repo: Path
    #: of a buggy kernel's runs, which show the bug (cycled): (True,) is deterministic
    shows: tuple[bool, ...] = (True,)
    #: sha -> verdicts (cycled), whatever its tree holds
    override: dict[str, list[Verdict]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def verdict(self, sha: str) -> Verdict:
        n = self.count(sha)
        if sha in self.override:
            return self.override[sha][n % len(self.override[sha])]
        buggy = proc.run(["git", "-C", self.repo, "grep", "-q", "BUG", sha],
                         check=False).returncode == 0
        return B if buggy and self.shows[n % len(self.shows)] else G

    def step(self, how: str, sha: str) -> Step:
        # a verification that does not stop fails here instead of hanging the suite
        assert len(self.calls) < 100, "runaway verification"
        verdict = self.verdict(sha)
        self.calls.append((how, sha))
        return Step(Stage.VERIFY, sha, verdict, "scripted")

    def test(self, sha: str) -> Step:
        return self.step("test", sha)

    def retest(self, sha: str) -> Step:
        return self.step("retest", sha)

    def count(self, sha: str) -> int:
        return sum(s == sha for _, s in self.calls)


def verify(t: Tree, runs: Runs, terms: Terms | None = None, *, revert: bool = True,
           artifact_hash: Callable[[str], str | None] | None = None,
           policy: VerifyPolicy | None = None) -> CulpritVerification:
    return verify_culprit(t.repo, t.culprit, terms or Terms(), test=runs.test,
                          retest=runs.retest, new_end=t.tip, revert=revert,
                          artifact_hash=artifact_hash, policy=policy)


def role(v: CulpritVerification, which: VerificationRole) -> list[tuple[int, int, int]]:
    return [(r.good, r.bad, r.skip) for r in v.runs if r.role is which]


# ---------------------------------------------------------------- re-tests
def test_deterministic_culprit_is_confirmed_with_two_runs_each(tmp_path: Path) -> None:
    t = regression(tmp_path)
    v = verify(t, Runs(t.repo), revert=False)
    assert v.status is VerificationStatus.CONFIRMED and v.flags == []
    assert role(v, VerificationRole.CULPRIT) == [(0, 2, 0)]
    assert role(v, VerificationRole.PARENT) == [(2, 0, 0)]
    assert v.confidence >= 0.95


def test_culprit_whose_parent_tests_bad_is_doubtful(tmp_path: Path) -> None:
    t = regression(tmp_path)
    runs = Runs(t.repo, override={parent(t.repo, t.culprit): [B]})
    v = verify(t, runs)
    assert v.status is VerificationStatus.DOUBTFUL
    assert v.flags[0].startswith("retest: ") and "parent" in v.flags[0]
    assert v.confidence < 0.05


def test_refuted_culprit_costs_the_minimum_runs_and_no_revert(tmp_path: Path) -> None:
    t = regression(tmp_path)
    runs = Runs(t.repo, override={parent(t.repo, t.culprit): [B]})
    v = verify(t, runs)
    assert len(runs.calls) == 4  # two of the culprit, two of the parent
    assert v.revert.status is RevertStatus.SKIPPED


def test_flaky_culprit_is_confirmed_with_more_runs(tmp_path: Path) -> None:
    t = regression(tmp_path)
    runs = Runs(t.repo, shows=(True, False))  # the bug shows in one run of two
    v = verify(t, runs, revert=False)
    assert v.status is VerificationStatus.CONFIRMED
    assert 4 < len(runs.calls) <= 12
    assert runs.count(parent(t.repo, t.culprit)) > 2  # the parent's GOODs are what count


def test_undecidable_parent_stops_at_the_run_budget(tmp_path: Path) -> None:
    t = regression(tmp_path)
    p = parent(t.repo, t.culprit)
    runs = Runs(t.repo, override={p: [S]})  # the parent never builds
    v = verify(t, runs, revert=False, policy=VerifyPolicy(max_runs=5))
    assert runs.count(p) == 5 and runs.count(t.culprit) == 2
    assert v.status is VerificationStatus.DOUBTFUL and "could not be tested" in v.flags[0]


def test_only_the_first_run_of_each_kernel_comes_from_test(tmp_path: Path) -> None:
    t = regression(tmp_path)
    runs = Runs(t.repo, shows=(True, False))
    verify(t, runs)
    firsts = [sha for how, sha in runs.calls if how == "test"]
    assert len(firsts) == len(set(firsts)) == 3  # culprit, parent, revert: once each
    assert [how for how, _ in runs.calls].count("retest") == len(runs.calls) - 3


def test_find_fix_culprit_is_confirmed(tmp_path: Path) -> None:
    t = fixed_later(tmp_path)
    v = verify(t, Runs(t.repo), FIND_FIX)
    assert v.status is VerificationStatus.CONFIRMED, v.flags
    assert role(v, VerificationRole.CULPRIT) == [(2, 0, 0)]
    assert role(v, VerificationRole.PARENT) == [(0, 2, 0)]
    assert v.revert.result == "broken"  # the fix reverted on the fixed end: broken again


def test_find_fix_culprit_whose_parent_is_fixed_already_is_doubtful(tmp_path: Path) -> None:
    t = fixed_later(tmp_path)
    runs = Runs(t.repo, override={parent(t.repo, t.culprit): [G]})
    v = verify(t, runs, FIND_FIX)
    assert v.status is VerificationStatus.DOUBTFUL and "first fixed commit" in v.flags[0]


# ---------------------------------------------------------------- the confidence model
def test_two_agreeing_runs_each_reach_the_default_target() -> None:
    assert posterior([(2, 0), (0, 2)], {0: True, 1: False}) >= 0.95


def test_one_run_each_does_not_reach_the_default_target() -> None:
    assert posterior([(1, 0), (0, 1)], {0: True, 1: False}) < 0.95


def test_a_parent_that_missed_the_bug_once_in_two_is_not_trusted() -> None:
    # the culprit shows the bug in one run of two: two GOODs of the parent prove little
    assert posterior([(1, 1), (0, 2)], {0: True, 1: False}) < 0.8


# ---------------------------------------------------------------- the revert
def test_revert_applies_and_tests_old(tmp_path: Path) -> None:
    t = regression(tmp_path)
    v = verify(t, Runs(t.repo))
    assert v.revert.status is RevertStatus.APPLIED and v.revert.result == "good"
    assert v.revert.commit is not None
    assert parent(t.repo, v.revert.commit) == t.tip
    assert git(t.repo, "show", f"{v.revert.commit}:net.c") == net().strip()
    assert role(v, VerificationRole.REVERT) == [(2, 0, 0)]


def test_revert_commit_is_kept_under_a_bisector_ref(tmp_path: Path) -> None:
    t = regression(tmp_path)
    rev = revert_commit(t.repo, t.culprit, t.tip)
    refs = git(t.repo, "for-each-ref", "--format=%(objectname)", REVERT_REFS)
    assert rev.commit is not None and refs == rev.commit


def test_revert_commit_is_the_same_commit_when_made_again(tmp_path: Path) -> None:
    # a resumed campaign's memo must recognise the revert it tested before the crash
    t = regression(tmp_path)
    assert revert_commit(t.repo, t.culprit, t.tip).commit \
        == revert_commit(t.repo, t.culprit, t.tip).commit


def test_revert_leaves_the_checkout_alone(tmp_path: Path) -> None:
    t = regression(tmp_path)
    git(t.repo, "checkout", "-q", "-f", "main")
    (t.repo / "ip.c").write_text("int ip = 3; /* the user's edit */\n")
    index = (t.repo / ".git" / "index").read_bytes()
    status = git(t.repo, "status", "--porcelain")
    revert_commit(t.repo, t.culprit, t.tip)
    assert git(t.repo, "rev-parse", "HEAD") == t.tip
    assert (t.repo / ".git" / "index").read_bytes() == index
    assert git(t.repo, "status", "--porcelain") == status == "M ip.c"


def test_revert_that_still_tests_new_makes_the_culprit_doubtful(tmp_path: Path) -> None:
    # a later commit brings the bug a second way: reverting the culprit does not help
    t = regression(tmp_path, after={"ip.c": "int ip = BUG;\n"})
    v = verify(t, Runs(t.repo))
    assert v.revert.result == "bad"
    assert v.status is VerificationStatus.DOUBTFUL and v.flags[0].startswith("revert: ")


def test_revert_that_does_not_apply_is_reported(tmp_path: Path) -> None:
    t = regression(tmp_path, after={"net.c": net(line5="BUG", line6="0")})
    v = verify(t, Runs(t.repo))
    assert v.revert.status is RevertStatus.DOES_NOT_APPLY
    assert "does not apply" in v.revert.note and "net.c" in v.revert.note
    assert v.status is VerificationStatus.CONFIRMED  # an impossible check is not a failed one


def test_revert_applies_despite_later_changes_in_its_context(tmp_path: Path) -> None:
    # line 8 is in the culprit hunk's context: a plain `git apply -R` refuses, 3-way does not
    t = regression(tmp_path, after={"net.c": net(line5="BUG", line8="8")})
    rev = revert_commit(t.repo, t.culprit, t.tip)
    assert rev.status is RevertStatus.APPLIED and rev.commit is not None
    assert git(t.repo, "show", f"{rev.commit}:net.c") == net(line8="8").strip()


def merge_tree(tmp_path: Path) -> tuple[Tree, str, str]:
    """base; side adds side.c; main changes ip.c; the merge of both brings BUG; a tip."""
    repo = empty_repo(tmp_path / "linux")
    base = commit_files(repo, "base", {"net.c": net(), "ip.c": "int ip;\n"})
    side = commit_files(repo, "side: add", {"side.c": "int side;\n"}, parents=[base],
                        ref="refs/heads/side")
    main = commit_files(repo, "ip: one", {"ip.c": "int ip = 1;\n"})
    merge = commit_files(repo, "Merge branch 'side'",
                         {"side.c": "int side;\n", "net.c": net(line5="BUG")},
                         parents=[main, side])
    tip = commit_files(repo, "ip: two", {"ip.c": "int ip = 2;\n"})
    return Tree(repo, base, merge, tip), main, side


def test_merge_culprit_is_doubtful_even_when_every_run_agrees(tmp_path: Path) -> None:
    t, _, _ = merge_tree(tmp_path)
    v = verify(t, Runs(t.repo))
    assert [bad for _, bad, _ in role(v, VerificationRole.PARENT)] == [0, 0]
    assert v.confidence >= 0.95
    assert v.status is VerificationStatus.DOUBTFUL
    assert [f.split(":")[0] for f in v.flags] == ["merge"]


def test_merge_culprit_is_reverted_against_its_first_parent(tmp_path: Path) -> None:
    t, _, _ = merge_tree(tmp_path)
    rev = revert_commit(t.repo, t.culprit, t.tip)
    assert rev.status is RevertStatus.APPLIED and rev.commit is not None
    files = git(t.repo, "ls-tree", "--name-only", rev.commit).split()
    assert "side.c" not in files  # what the merge brought into the mainline is gone
    assert git(t.repo, "show", f"{rev.commit}:ip.c") == "int ip = 2;"  # the mainline's stays


def test_empty_commit_is_not_revertable(tmp_path: Path) -> None:
    t = regression(tmp_path)
    empty = commit_files(t.repo, "nothing", {})
    assert revert_commit(t.repo, empty, t.tip).status is RevertStatus.NOT_REVERTABLE


# ---------------------------------------------------------------- culprits that cannot be right
def kinds(repo: Path, sha: str, built_files: Callable[[], set[str]] | None = None
          ) -> list[str]:
    return [f.split(":")[0] for f in culprit_flags(repo, sha, built_files=built_files)]


def test_release_subject_is_flagged(tmp_path: Path) -> None:
    t = regression(tmp_path)
    sha = commit_files(t.repo, "Linux 6.2-rc1", {"ip.c": "int ip = 7;\n"})
    assert kinds(t.repo, sha) == ["release"]


def test_release_tag_is_flagged(tmp_path: Path) -> None:
    t = regression(tmp_path)
    git(t.repo, "tag", "v6.1.2", t.culprit)
    assert kinds(t.repo, t.culprit) == ["release"]


def test_version_bump_only_commit_is_flagged(tmp_path: Path) -> None:
    t = regression(tmp_path)
    sha = commit_files(t.repo, "kbuild: next",
                       {"Makefile": MAKEFILE.replace("SUBLEVEL = 0", "SUBLEVEL = 1")})
    assert kinds(t.repo, sha) == ["release"]


def test_makefile_change_beyond_version_lines_is_not_a_release(tmp_path: Path) -> None:
    t = regression(tmp_path)
    sha = commit_files(t.repo, "kbuild: flags", {"Makefile": MAKEFILE.replace(
        "SUBLEVEL = 0", "SUBLEVEL = 1").replace("@true", "@echo all")})
    assert kinds(t.repo, sha) == []


def test_identical_artifact_is_flagged(tmp_path: Path) -> None:
    t = regression(tmp_path)
    v = verify(t, Runs(t.repo), artifact_hash=lambda sha: "0" * 64)
    assert v.status is VerificationStatus.DOUBTFUL
    assert [f.split(":")[0] for f in v.flags] == ["noop"]


def test_unknown_artifact_hashes_flag_nothing(tmp_path: Path) -> None:
    t = regression(tmp_path)
    v = verify(t, Runs(t.repo), artifact_hash=lambda sha: None)
    assert v.status is VerificationStatus.CONFIRMED


def test_empty_commit_is_flagged(tmp_path: Path) -> None:
    t = regression(tmp_path)
    assert kinds(t.repo, commit_files(t.repo, "nothing", {})) == ["empty"]


def test_documentation_only_change_is_flagged(tmp_path: Path) -> None:
    t = regression(tmp_path)
    assert kinds(t.repo, t.tip) == ["unbuilt"]


def test_other_architecture_only_change_is_flagged(tmp_path: Path) -> None:
    t = regression(tmp_path)
    sha = commit_files(t.repo, "arm64: tweak", {"arch/arm64/kernel/setup.c": "int a;\n"})
    assert kinds(t.repo, sha) == ["unbuilt"]


def test_c_file_the_build_does_not_compile_is_flagged(tmp_path: Path) -> None:
    t = regression(tmp_path)
    assert kinds(t.repo, t.culprit, built_files=lambda: {"ip.c"}) == ["unbuilt"]


def test_c_file_the_build_compiles_is_not_flagged(tmp_path: Path) -> None:
    t = regression(tmp_path)
    assert kinds(t.repo, t.culprit, built_files=lambda: {"net.c"}) == []


def test_compiled_sources_are_the_objects_of_the_build_directory(tmp_path: Path) -> None:
    (tmp_path / "net" / "ipv4").mkdir(parents=True)
    (tmp_path / "net" / "ipv4" / "ip_tunnel.o").write_bytes(b"")
    (tmp_path / "net" / "ipv4" / "ip_tunnel.h").write_bytes(b"")
    assert compiled_sources(tmp_path) == {"net/ipv4/ip_tunnel.c"}


# ---------------------------------------------------------------- the result
@pytest.mark.parametrize("status", [VerificationStatus.CONFIRMED, VerificationStatus.DOUBTFUL])
def test_campaign_result_round_trips_a_verification(tmp_path: Path,
                                                    status: VerificationStatus) -> None:
    t = regression(tmp_path)
    runs = Runs(t.repo, override={} if status is VerificationStatus.CONFIRMED
                else {parent(t.repo, t.culprit): [B]})
    cr = CampaignResult(campaign_id=1, status=CampaignStatus.FOUND,
                        verification=verify(t, runs))
    back = CampaignResult.model_validate(cr.model_dump(mode="json"))
    assert back == cr and back.verification is not None
    assert back.verification.status is status
