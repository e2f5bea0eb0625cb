"""The bisection engine over a small real git repo, driven by scripted verdicts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bisector.bisect import (
    Bisector,
    GitBisection,
    Handler,
    ListBisection,
    StepOutcome,
    Terms,
    parse_bisect_log,
)
from bisector.errors import UserError
from bisector.verdict import Verdict
from tests.fakes.gitrepo import git, linear_repo

G, B, S = Verdict.GOOD, Verdict.BAD, Verdict.SKIP


class Recorder(Handler):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def step_finished(self, stage: str, index: int, candidate: str, o: StepOutcome) -> None:
        self.events.append((candidate, o.verdict.value))


def scripted(shas: list[str], verdict_of_index: dict[int, Verdict] | None = None,
             culprit: int | None = None, fix: int | None = None):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def tester(stage: str, cand: str) -> StepOutcome:
        calls.append(cand)
        i = shas.index(cand)
        if verdict_of_index and i in verdict_of_index:
            return StepOutcome(verdict_of_index[i], "scripted")
        if culprit is not None:
            return StepOutcome(B if i >= culprit else G, "scripted")
        assert fix is not None
        return StepOutcome(G if i >= fix else B, "scripted")

    return tester, calls


@pytest.mark.parametrize("culprit", [1, 7, 16, 32])
def test_git_first_bad(tmp_path: Path, culprit: int) -> None:
    shas = linear_repo(tmp_path / "r", 32)
    tester, calls = scripted(shas, culprit=culprit)
    gb = GitBisection(tmp_path / "r", shas[0], shas[-1])
    gb.start()
    res = Bisector(tester).run("git", gb)
    assert res.first == shas[culprit]
    assert len(calls) <= math.ceil(math.log2(32)) + 1
    log = gb.log()
    assert f"first bad commit: [{shas[culprit]}]" in log
    gb.reset()
    assert git(tmp_path / "r", "rev-parse", "HEAD") == shas[-1]  # checkout untouched


def test_git_find_fix_with_custom_terms(tmp_path: Path) -> None:
    shas = linear_repo(tmp_path / "r", 20)
    terms = Terms.make(find_fix=True)
    assert (terms.old, terms.new) == ("broken", "fixed")
    tester, _ = scripted(shas, fix=13)
    gb = GitBisection(tmp_path / "r", shas[0], shas[-1], terms)
    gb.start()
    res = Bisector(tester).run("git", gb)
    assert res.first == shas[13]
    assert "git bisect fixed" in gb.log() and "git bisect broken" in gb.log()


def test_skips_around_culprit_give_honest_candidates(tmp_path: Path) -> None:
    shas = linear_repo(tmp_path / "r", 16)
    verdicts = {i: (B if i >= 9 else G) for i in range(17)}
    verdicts.update({8: S, 9: S})
    tester, _ = scripted(shas, verdicts)
    gb = GitBisection(tmp_path / "r", shas[0], shas[-1])
    gb.start()
    res = Bisector(tester).run("git", gb)
    assert not res.found
    assert set(res.candidates) == {shas[8], shas[9], shas[10]}


def test_skip_away_from_culprit_still_finds_it(tmp_path: Path) -> None:
    shas = linear_repo(tmp_path / "r", 16)
    verdicts = {i: (B if i >= 12 else G) for i in range(17)}
    verdicts.update({8: S, 4: S})
    tester, calls = scripted(shas, verdicts)
    gb = GitBisection(tmp_path / "r", shas[0], shas[-1])
    gb.start()
    assert Bisector(tester).run("git", gb).first == shas[12]
    assert shas[8] in calls  # the skipped midpoint was tried, then avoided


def test_all_skipped(tmp_path: Path) -> None:
    shas = linear_repo(tmp_path / "r", 5)
    tester, _ = scripted(shas, {i: S for i in range(1, 5)})
    gb = GitBisection(tmp_path / "r", shas[0], shas[-1])
    gb.start()
    res = Bisector(tester).run("git", gb)
    assert not res.found and set(res.candidates) == set(shas[1:])


def test_bad_range_is_a_user_error(tmp_path: Path) -> None:
    shas = linear_repo(tmp_path / "r", 4)
    gb = GitBisection(tmp_path / "r", shas[-1], shas[0])  # "good" is newer than "bad"
    with pytest.raises(UserError, match="git bisect refused"):
        gb.start()


def test_list_bisection() -> None:
    items = [f"debian:6.1.0-{n}" for n in (47, 50, 53, 54, 55, 56)]
    culprit = 3
    calls: list[str] = []

    def tester(stage: str, cand: str) -> StepOutcome:
        calls.append(cand)
        return StepOutcome(B if items.index(cand) >= culprit else G, "x")

    res = Bisector(tester).run("list", ListBisection(items))
    assert (res.first, res.last_old) == (items[3], items[2])
    assert len(calls) <= 3


def test_list_bisection_skips_and_inconsistency() -> None:
    items = ["a", "b", "c", "d", "e"]
    verdicts = {"b": S, "c": S, "d": B}

    def tester(stage: str, cand: str) -> StepOutcome:
        return StepOutcome(verdicts.get(cand, G), "x")

    res = Bisector(tester).run("list", ListBisection(items))
    assert not res.found and res.candidates == ["b", "c", "d"] and res.last_old == "a"
    bis = ListBisection(items)
    bis.mark("d", G)
    with pytest.raises(UserError, match="inconsistent"):
        bis.mark("b", B)


def test_parse_bisect_log() -> None:
    log = ("git bisect start '--term-old=good' '--term-new=bad'\n# bad: [aaa] x\n"
           "git bisect bad aaa\n# good: [bbb] y\ngit bisect good bbb\ngit bisect skip ccc ddd\n")
    assert parse_bisect_log(log) == [("bad", "aaa"), ("good", "bbb"), ("skip", "ccc"),
                                     ("skip", "ddd")]
    t = Terms.make(find_fix=True)
    assert t.verdict_for("fixed") is G and t.verdict_for("broken") is B
    assert t.term_for(G) == "fixed" and t.term_for(S) == "skip"
