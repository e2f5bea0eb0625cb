"""The bisection engines over small real git repos, driven by scripted verdicts.

The last test runs real ``git bisect run`` on the same histories with the same
oracle, so "what git would answer" is measured, not assumed.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from bisector import git as gitmod
from bisector.errors import UserError
from bisector.outcomes import Stage, StageResult, Step, Terms
from bisector.search import Bisector, GitBisection, ListBisection, Tester, parse_bisect_log
from bisector.search.gitsearch import parse_bisect_all
from bisector.verdict import Verdict
from tests.fakes.gitrepo import History, git

G, B, S = Verdict.GOOD, Verdict.BAD, Verdict.SKIP


def scripted(shas: list[str], verdict_of_index: dict[int, Verdict] | None = None,
             culprit: int | None = None, fix: int | None = None
             ) -> tuple[Tester, list[str]]:
    calls: list[str] = []

    def tester(stage: Stage, cand: str) -> Step:
        calls.append(cand)
        i = shas.index(cand)
        if verdict_of_index and i in verdict_of_index:
            return Step(stage, cand, verdict_of_index[i], "scripted")
        if culprit is not None:
            return Step(stage, cand, B if i >= culprit else G, "scripted")
        assert fix is not None
        return Step(stage, cand, G if i >= fix else B, "scripted")

    return tester, calls


def linear(path: Path, n: int) -> list[str]:
    """[root, c1..cn] shas: ``gitrepo.linear_repo`` without files (a third of its git calls)."""
    h = History()
    h.commit("r")
    names = ["r", *h.chain("c", n, "r")]
    shas = h.build(path)
    return [shas[name] for name in names]


def bound(candidates: int, skips: int) -> int:
    """What a bisection may cost: halving the range, plus one step per skip verdict."""
    return math.ceil(math.log2(candidates)) + skips


# ----------------------------------------------------------------- linear histories

@pytest.mark.parametrize("culprit", [1, 7, 16, 32])
def test_git_first_bad(tmp_path: Path, culprit: int) -> None:
    shas = linear(tmp_path / "r", 32)
    tester, calls = scripted(shas, culprit=culprit)
    gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
    gb.start()
    res = Bisector(tester).run(Stage.GIT, gb)
    assert res.first == shas[culprit]
    assert len(calls) <= math.ceil(math.log2(32)) + 1
    log = gb.log()
    assert f"first bad commit: [{shas[culprit]}]" in log
    gb.reset()
    assert git(tmp_path / "r", "rev-parse", "HEAD") == shas[-1]  # checkout untouched


def test_a_single_old_may_be_a_plain_string(tmp_path: Path) -> None:
    gb = GitBisection(tmp_path, "v6.1", "v6.2")
    assert gb.olds == ["v6.1"]


def test_git_find_fix_with_custom_terms(tmp_path: Path) -> None:
    shas = linear(tmp_path / "r", 20)
    terms = Terms.make(find_fix=True)
    assert (terms.old, terms.new) == ("broken", "fixed")
    tester, _ = scripted(shas, fix=13)
    gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1], terms)
    gb.start()
    res = Bisector(tester).run(Stage.GIT, gb)
    assert res.first == shas[13]
    assert "git bisect fixed" in gb.log() and "git bisect broken" in gb.log()


def test_skips_around_culprit_give_honest_candidates(tmp_path: Path) -> None:
    shas = linear(tmp_path / "r", 16)
    verdicts = {i: (B if i >= 9 else G) for i in range(17)}
    verdicts.update({8: S, 9: S})
    tester, calls = scripted(shas, verdicts)
    gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
    gb.start()
    res = Bisector(tester).run(Stage.GIT, gb)
    assert not res.found
    assert set(res.candidates) == {shas[8], shas[9], shas[10]}
    assert len(calls) <= bound(16, sum(verdicts[shas.index(c)] is S for c in calls))


def test_skip_away_from_culprit_still_finds_it(tmp_path: Path) -> None:
    shas = linear(tmp_path / "r", 16)
    verdicts = {i: (B if i >= 12 else G) for i in range(17)}
    verdicts.update({8: S, 4: S})
    tester, calls = scripted(shas, verdicts)
    gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
    gb.start()
    assert Bisector(tester).run(Stage.GIT, gb).first == shas[12]
    assert shas[8] in calls  # the skipped midpoint was tried, then avoided
    assert len(calls) <= bound(16, sum(verdicts[shas.index(c)] is S for c in calls))


@pytest.mark.parametrize(("culprit", "skipped"), [
    (16, {8}),  # git's own distances send these to c9, c10, …: 6 steps
    (15, {8}),
    (7, {4}),
    (10, {8, 9}),
    (3, {8, 4, 2}),
])
def test_steps_after_skips_stay_within_log2_plus_skips(tmp_path: Path, culprit: int,
                                                        skipped: set[int]) -> None:
    shas = linear(tmp_path / "r", 16)
    verdicts = {i: S if i in skipped else B if i >= culprit else G for i in range(17)}
    tester, calls = scripted(shas, verdicts)
    gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
    gb.start()
    Bisector(tester).run(Stage.GIT, gb)
    assert len(calls) <= bound(16, sum(verdicts[shas.index(c)] is S for c in calls))


def test_next_halves_the_untested_commits_after_skips(tmp_path: Path) -> None:
    """c1, c2 skipped in c1..c6: c3 halves the six commits but splits the untested
    ones and the known bad one (c3..c6) 1:3; c4 splits them 2:2."""
    shas = linear(tmp_path / "r", 6)
    gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
    gb.start()
    gb.mark(shas[1], S)
    gb.mark(shas[2], S)
    assert gb.next() == shas[4]
    assert gb.steps_left() == 2


def test_all_skipped(tmp_path: Path) -> None:
    shas = linear(tmp_path / "r", 5)
    tester, calls = scripted(shas, {i: S for i in range(1, 5)})
    gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
    gb.start()
    res = Bisector(tester).run(Stage.GIT, gb)
    assert not res.found and set(res.candidates) == set(shas[1:])
    assert len(calls) <= bound(5, len(calls))


def test_unfinished_bisection_names_the_commits_left(tmp_path: Path) -> None:
    shas = linear(tmp_path / "r", 6)
    gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
    gb.start()
    gb.mark(shas[3], G)
    res = gb.result()
    assert not res.found and res.candidates == shas[:3:-1]  # c6, c5, c4: newest first


def test_bad_range_is_a_user_error(tmp_path: Path) -> None:
    shas = linear(tmp_path / "r", 4)
    gb = GitBisection(tmp_path / "r", [shas[-1]], shas[0])  # "good" is newer than "bad"
    with pytest.raises(UserError, match="git bisect refused"):
        gb.start()


# ----------------------------------------------------------------- histories with merges

def topic_history() -> History:
    """main r-m1..m6, topic t1..t3 forked at m2 (branch topic-y), merged as M after m6,
    then n1..n3; tags v0.1 at m1, v0.2 at m4, v0.3 at n2."""
    h = History()
    h.commit("r")
    h.chain("m", 6, "r")
    h.chain("t", 3, "m2")
    h.commit("M", "m6", "t3")
    h.chain("n", 3, "M")
    h.branch("topic-y", "t3")
    for tag, name in (("v0.1", "m1"), ("v0.2", "m4"), ("v0.3", "n2")):
        h.tag(tag, name)
    return h


def ancestry_tester(h: History, shas: Mapping[str, str], culprit: str
                    ) -> tuple[Tester, list[str]]:
    """BAD iff the culprit is an ancestor of the commit (or the commit itself)."""
    names = {sha: name for name, sha in shas.items()}
    calls: list[str] = []

    def tester(stage: Stage, cand: str) -> Step:
        calls.append(names[cand])
        return Step(stage, cand, B if h.is_ancestor(culprit, names[cand]) else G, "ancestry")

    return tester, calls


@pytest.mark.parametrize("weigh", ["exact", "git distances"])
@pytest.mark.parametrize("culprit", [
    "m4",  # tagged v0.2: "<sha> (tag: v0.2, dist=…)"
    "t3",  # the topic's tip, "<sha> (topic-y, dist=…)": the last commit left to test
    "M",  # the merge commit
])
def test_decorated_commits_are_tested(tmp_path: Path, culprit: str, weigh: str) -> None:
    h = topic_history()
    shas = h.build(tmp_path / "r")
    tester, calls = ancestry_tester(h, shas, culprit)
    gb = GitBisection(tmp_path / "r", [shas["r"]], shas["n3"])
    if weigh == "git distances":
        gb.exact_limit = 0
    gb.start()
    res = Bisector(tester).run(Stage.GIT, gb)
    assert res.first == shas[culprit]
    assert culprit in calls


@pytest.mark.parametrize(("line", "parsed"), [
    ("a" * 40 + " (dist=3)", ("a" * 40, 3)),
    ("a" * 40 + " (topic-y, dist=1)", ("a" * 40, 1)),
    ("a" * 40 + " (tag: v6.1-rc3, dist=4)", ("a" * 40, 4)),
    ("a" * 40 + " (HEAD -> main, refs/bisect/bad, dist=0)", ("a" * 40, 0)),
    ("a" * 40 + " (fix(a,b), tag: x, dist=12)", ("a" * 40, 12)),  # ref names may hold ",()"
])
def test_parse_bisect_all(line: str, parsed: tuple[str, int]) -> None:
    assert parse_bisect_all(line + "\n") == [parsed]


def stable_history() -> History:
    """main r-m1..m12; a stable branch s1..s4 forked at m4 (so s4 is not an ancestor of m12)."""
    h = History()
    h.commit("r")
    h.chain("m", 12, "r")
    h.chain("s", 4, "m4")
    h.branch("stable", "s4")
    return h


def test_merge_base_is_tested_first(tmp_path: Path) -> None:
    h = stable_history()
    shas = h.build(tmp_path / "r")
    tester, calls = ancestry_tester(h, shas, "m9")
    gb = GitBisection(tmp_path / "r", [shas["s4"]], shas["m12"])
    gb.start()
    res = Bisector(tester).run(Stage.GIT, gb)
    assert calls[0] == "m4"
    assert res.first == shas["m9"]


def test_new_merge_base_ends_inconsistent(tmp_path: Path) -> None:
    """m2 brought the bug, s2 fixed it on the stable branch: the merge base m4 is bad."""
    h = stable_history()
    shas = h.build(tmp_path / "r")
    names = {sha: name for name, sha in shas.items()}

    def tester(stage: Stage, cand: str) -> Step:
        c = names[cand]
        bad = h.is_ancestor("m2", c) and not h.is_ancestor("s2", c)
        return Step(stage, cand, B if bad else G, "bug in m2, fixed in s2")

    gb = GitBisection(tmp_path / "r", [shas["s4"]], shas["m12"])
    gb.start()
    res = Bisector(tester).run(Stage.GIT, gb)
    assert res == StageResult(inconsistent=True, note=(
        f"The merge base {shas['m4']} is bad: this means the bug has been fixed between "
        f"{shas['m4']} and [{shas['s4']}]."))


@pytest.mark.skipif(not Path("/usr/share/locale/de/LC_MESSAGES/git.mo").exists(),
                    reason="git's German messages are not installed")
def test_git_is_read_untranslated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A German desktop: git would say "Binäre Suche: eine Merge-Basis muss geprüft werden"."""
    monkeypatch.setenv("LANGUAGE", "de")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    h = stable_history()
    shas = h.build(tmp_path / "r")
    tester, calls = ancestry_tester(h, shas, "m9")
    gb = GitBisection(tmp_path / "r", [shas["s4"]], shas["m12"])
    gb.start()
    Bisector(tester).run(Stage.GIT, gb)
    assert calls[0] == "m4"


def test_several_olds_bound_the_range(tmp_path: Path) -> None:
    """A long topic t1..t8, merged as M, is known good at its tip: from r alone the
    best first split is inside it; with t8 old too, m2, m3, M and n1 are all that is left."""
    h = History()
    h.commit("r")
    h.chain("m", 3, "r")
    h.chain("t", 8, "m1")
    h.commit("M", "m3", "t8")
    h.commit("n1", "M")
    shas = h.build(tmp_path / "r")
    tester, calls = ancestry_tester(h, shas, "m3")
    gb = GitBisection(tmp_path / "r", [shas["r"], shas["t8"]], shas["n1"])
    gb.start()
    res = Bisector(tester).run(Stage.GIT, gb)
    assert res.first == shas["m3"]
    assert not [c for c in calls if c.startswith("t")]


def test_skipped_merge_base_is_noted(tmp_path: Path) -> None:
    """git goes on when the merge base cannot be tested; the answer must say it rests on
    an unchecked assumption."""
    h = stable_history()
    shas = h.build(tmp_path / "r")
    tester, _ = ancestry_tester(h, shas, "m9")

    def skip_merge_base(stage: Stage, cand: str) -> Step:
        return Step(stage, cand, S, "no build") if cand == shas["m4"] else tester(stage, cand)

    gb = GitBisection(tmp_path / "r", [shas["s4"]], shas["m12"])
    gb.start()
    res = Bisector(skip_merge_base).run(Stage.GIT, gb)
    assert res.first == shas["m9"]
    assert f"the merge base {shas['m4']} could not be tested" in res.note


def test_verdicts_on_our_picks_keep_the_merge_base_check(tmp_path: Path) -> None:
    """Topic t1..t4 forks at o, below the merge base mb of B and the old G, and joins
    after it.  git re-checks merge bases after a verdict on a commit other than the one
    it picked (ours differ after the skip of t4); for the new t3 it would ask for o,
    an ancestor of the old mb."""
    h = History()
    h.commit("o")
    h.commit("mb", "o")
    h.chain("t", 4, "o")
    h.chain("x", 3, "mb")
    h.commit("join", "x3", "t4")
    h.commit("B", "join")
    h.commit("G", "mb")
    shas = h.build(tmp_path / "r")
    tester, calls = ancestry_tester(h, shas, "t2")

    def skip_t4(stage: Stage, cand: str) -> Step:
        return Step(stage, cand, S, "no build") if cand == shas["t4"] else tester(stage, cand)

    gb = GitBisection(tmp_path / "r", [shas["G"]], shas["B"])
    gb.start()
    res = Bisector(skip_t4).run(Stage.GIT, gb)
    assert res.first == shas["t2"]
    assert "o" not in calls


@pytest.mark.parametrize("culprit", ["a2", "b3", "M"])
def test_ties_do_not_depend_on_commit_ids(tmp_path: Path, culprit: str) -> None:
    """Two branches of the same length, merged: a_k and b_k always split alike.  The
    same graph with other commit ids is bisected through the same commits."""
    picks: list[list[str]] = []
    for salt in ("", " (again)"):
        h = History()
        h.commit("r")
        h.chain("a", 4, "r")
        h.chain("b", 4, "r")
        h.commit("M", "a4", "b4")
        h.chain("n", 2, "M")
        repo = tmp_path / f"r{len(picks)}"
        shas = h.build(repo, salt=salt)
        tester, calls = ancestry_tester(h, shas, culprit)
        gb = GitBisection(repo, [shas["r"]], shas["n2"])
        gb.start()
        Bisector(tester).run(Stage.GIT, gb)
        picks.append(calls)
    assert picks[0] == picks[1]


# ----------------------------------------------------------------- prebuilt kernel lists

def test_list_bisection() -> None:
    items = [f"debian:6.1.0-{n}" for n in (47, 50, 53, 54, 55, 56)]
    culprit = 3
    calls: list[str] = []

    def tester(stage: Stage, cand: str) -> Step:
        calls.append(cand)
        return Step(stage, cand, B if items.index(cand) >= culprit else G, "x")

    res = Bisector(tester).run(Stage.LIST, ListBisection(items))
    assert (res.first, res.last_old) == (items[3], items[2])
    assert len(calls) <= 3


def test_list_bisection_skips_give_candidates() -> None:
    items = ["a", "b", "c", "d", "e"]
    verdicts = {"b": S, "c": S, "d": B}

    def tester(stage: Stage, cand: str) -> Step:
        return Step(stage, cand, verdicts.get(cand, G), "x")

    res = Bisector(tester).run(Stage.LIST, ListBisection(items))
    assert not res.found and res.candidates == ["b", "c", "d"] and res.last_old == "a"


def test_list_next_halves_the_untested_kernels() -> None:
    """b..g skipped: of h, i, j and the known bad k, i splits them 2:2 (h would be 1:3)."""
    bis = ListBisection(list("abcdefghijk"))
    for k in "bcdefg":
        bis.mark(k, S)
    assert bis.next() == "i"


@pytest.mark.parametrize(("marks", "note"), [
    ([("d", G), ("b", B)], "inconsistent verdicts: d is good but the older b is bad"),
    ([("b", B), ("d", G)], "inconsistent verdicts: d is good but the older b is bad"),
    ([("e", G)], "inconsistent verdicts: e is both good and bad"),
])
def test_list_contradiction_ends_inconsistent(marks: list[tuple[str, Verdict]],
                                              note: str) -> None:
    bis = ListBisection(["a", "b", "c", "d", "e"])
    for kernel, verdict in marks:
        bis.mark(kernel, verdict)
    assert bis.next() is None
    assert bis.result() == StageResult(inconsistent=True, note=note)


def test_parse_bisect_log() -> None:
    log = ("git bisect start '--term-old=good' '--term-new=bad'\n# bad: [aaa] x\n"
           "git bisect bad aaa\n# good: [bbb] y\ngit bisect good bbb\ngit bisect skip ccc ddd\n")
    assert parse_bisect_log(log) == [("bad", "aaa"), ("good", "bbb"), ("skip", "ccc"),
                                     ("skip", "ddd")]
    t = Terms.make(find_fix=True)
    assert t.verdict_for("fixed") is G and t.verdict_for("broken") is B
    assert t.term_for(G) == "fixed" and t.term_for(S) == "skip"


# ----------------------------------------------------------------- against git bisect run

@dataclass(frozen=True)
class Case:
    """A history, its endpoints and a deterministic oracle: a commit is BAD iff the
    culprit is an ancestor-or-self of it and ``fix`` is not; SKIP for ``skips``."""

    history: Callable[[], History]
    olds: tuple[str, ...]
    new: str
    culprit: str
    skips: frozenset[str] = frozenset()
    fix: str | None = None

    def verdict(self, h: History, c: str) -> Verdict:
        if c in self.skips:
            return S
        bad = h.is_ancestor(self.culprit, c) and not (self.fix and h.is_ancestor(self.fix, c))
        return B if bad else G


def linear24() -> History:
    h = History()
    h.commit("r")
    h.chain("c", 24, "r")
    return h


def tagged24() -> History:
    h = linear24()
    for i in range(3, 25, 3):
        h.tag(f"v0.{i // 3}", f"c{i}")
    h.branch("wip", "c10")
    return h


def crisscross() -> History:
    """A and B merge each other at the same point (ma, mx: two merge bases a2, x2), go
    on, and are merged in F."""
    h = History()
    h.commit("r")
    h.chain("b", 2, "r")
    h.chain("a", 2, "b2")
    h.chain("x", 2, "b2")
    h.commit("ma", "a2", "x2")
    h.commit("mx", "x2", "a2")
    h.chain("aa", 4, "ma")
    h.chain("xx", 4, "mx")
    h.commit("F", "aa4", "xx4")
    h.chain("f", 3, "F")
    return h


def octopus() -> History:
    h = History()
    h.commit("r")
    h.chain("m", 4, "r")
    for arm in "pqu":
        h.chain(arm, 3, "m2")
    h.commit("O", "m4", "p3", "q3", "u3")
    h.chain("o", 3, "O")
    return h


def two_topics() -> History:
    """main m1..m6; t1..t5 from m2 merged as M1 after m6; u1..u4 from m3 merged as M2."""
    h = History()
    h.commit("r")
    h.chain("m", 6, "r")
    h.chain("t", 5, "m2")
    h.chain("u", 4, "m3")
    h.commit("M1", "m6", "t5")
    h.chain("n", 3, "M1")
    h.commit("M2", "n3", "u4")
    h.chain("k", 4, "M2")
    return h


def stable16() -> History:
    h = History()
    h.commit("r")
    h.chain("m", 16, "r")
    h.chain("s", 5, "m6")
    return h


def topic12() -> History:
    """main m1..m8, topic t1..t5 from m3, merged as M after m8, then n1..n4."""
    h = History()
    h.commit("r")
    h.chain("m", 8, "r")
    h.chain("t", 5, "m3")
    h.commit("M", "m8", "t5")
    h.chain("n", 4, "M")
    h.branch("topic", "t5")
    return h


CASES: dict[str, Case] = {
    "linear": Case(linear24, ("r",), "c24", "c13"),
    "topic, culprit on topic": Case(topic12, ("r",), "n4", "t4"),
    "topic, culprit on main": Case(topic12, ("r",), "n4", "m6"),
    "topic, culprit is the merge": Case(topic12, ("r",), "n4", "M"),
    "merge culprit, parents skipped": Case(topic12, ("r",), "n4", "M",
                                           frozenset({"m8", "t5"})),
    "criss-cross": Case(crisscross, ("r",), "f3", "xx2"),
    "criss-cross, two merge bases": Case(crisscross, ("aa4",), "xx4", "xx2"),
    "octopus": Case(octopus, ("r",), "o3", "q2"),
    "octopus, culprit is the merge": Case(octopus, ("r",), "o3", "O"),
    "skip before culprit": Case(linear24, ("r",), "c24", "c13", frozenset({"c12"})),
    "skip after culprit": Case(linear24, ("r",), "c24", "c13", frozenset({"c14"})),
    "culprit skipped": Case(linear24, ("r",), "c24", "c13", frozenset({"c13"})),
    "skips on both sides": Case(linear24, ("r",), "c24", "c13",
                                frozenset({"c11", "c12", "c14", "c15"})),
    "tags every 3 commits": Case(tagged24, ("r",), "c24", "c12"),
    "several olds": Case(two_topics, ("m1", "t5", "u2"), "k4", "n2"),
    "old not an ancestor of new": Case(stable16, ("s5",), "m16", "m11"),
    "merge base skipped": Case(stable16, ("s5",), "m16", "m11", frozenset({"m6"})),
    "merge base is new": Case(stable16, ("s5",), "m16", "m3", fix="s2"),
}

#: a ``git bisect run`` script: the oracle's exit code for the commit under test
ORACLE = """\
import json, subprocess, sys
sha = subprocess.run(["git", "rev-parse", "BISECT_HEAD"], capture_output=True, text=True,
                     check=True).stdout.strip()
with open(sys.argv[2], "a") as f:
    f.write(sha + "\\n")
sys.exit(json.load(open(sys.argv[1]))[sha])
"""


def git_bisect_run(repo: Path, case: Case, h: History, shas: Mapping[str, str]
                   ) -> tuple[StageResult, list[str]]:
    """What real ``git bisect run`` answers, and the commits it had tested."""
    codes = repo.parent / "codes.json"
    codes.write_text(json.dumps({sha: case.verdict(h, n).exit_code for n, sha in shas.items()}))
    script, calls = repo.parent / "oracle.py", repo.parent / "calls.txt"
    script.write_text(ORACLE)
    calls.write_text("")
    c = {"LC_ALL": "C"}  # what git says is parsed below
    gitmod.git(repo, "bisect", "start", "--no-checkout")
    gitmod.git(repo, "bisect", "bad", shas[case.new])
    gitmod.git(repo, "bisect", "good", *(shas[o] for o in case.olds), check=False)
    out = ""
    while not any(end in out for end in ("is the first bad commit", "only 'skip'ped commits",
                                         "The merge base")):
        # git (2.39) ends a run with "bisect run success" when one more merge base must
        # be tested, the bisection still going: as a user would, run it again
        assert out.count("bisect run success") < len(shas), out
        r = gitmod.git(repo, "bisect", "run", sys.executable, "-I", "-S", str(script),
                       str(codes), str(calls), check=False, env=c)
        out += r.stdout + r.stderr
    gitmod.git(repo, "bisect", "reset")
    tested = calls.read_text().split()
    first = next((line.split()[0] for line in out.splitlines()
                  if line.endswith("is the first bad commit")), None)
    if first is not None:
        return StageResult(first=first), tested
    if "only 'skip'ped commits left" in out:
        listed = out.split("could be any of:")[1].split("We cannot bisect more")[0].split()
        return StageResult(candidates=listed), tested
    assert "The merge base" in out and "is bad" in out, out
    return StageResult(inconsistent=True, note=out), tested


@pytest.mark.parametrize("shape", list(CASES))
def test_same_answer_as_git_bisect_run(tmp_path: Path, shape: str) -> None:
    """Same history, same oracle: we name git's first bad commit, in at most one step
    more than ``git bisect run`` (usually fewer: git spends steps on skip_away).

    When git is left with only skipped commits, our candidates must contain the
    culprit (sound) and be a subset of git's list (never less precise).  A
    subset, not the same set: each list is what that run's own verdicts leave,
    and a run that tested other commits may have excluded more; on these
    histories the lists are in fact equal.
    """
    case = CASES[shape]
    h = case.history()
    repo = tmp_path / "r"
    shas = h.build(repo)
    names = {sha: n for n, sha in shas.items()}
    theirs, git_calls = git_bisect_run(repo, case, h, shas)

    ours_calls: list[str] = []

    def tester(stage: Stage, cand: str) -> Step:
        ours_calls.append(cand)
        return Step(stage, cand, case.verdict(h, names[cand]), "oracle")

    gb = GitBisection(repo, [shas[o] for o in case.olds], shas[case.new])
    gb.start()
    ours = Bisector(tester).run(Stage.GIT, gb)
    gb.reset()

    if theirs.first is not None:
        assert ours.first == theirs.first == shas[case.culprit]
    elif theirs.candidates:
        assert ours.first is None
        assert shas[case.culprit] in ours.candidates
        assert set(ours.candidates) <= set(theirs.candidates)
    else:
        assert ours.inconsistent and not ours.candidates and ours.first is None
        assert "merge base" in ours.note
    assert len(ours_calls) <= len(git_calls) + 1


# ----------------------------------------------------------------- multisection

def _many(tester: Tester) -> Callable[[Stage, list[str]], list[Step]]:
    return lambda stage, cands: [tester(stage, c) for c in cands]


@pytest.mark.parametrize("k", [1, 2, 3, 7])
@pytest.mark.parametrize("culprit", [1, 13, 40, 64])
def test_multisection_finds_the_culprit_in_log_k_plus_1_rounds(tmp_path: Path, k: int,
                                                                culprit: int) -> None:
    shas = linear(tmp_path / "r", 64)
    tester, calls = scripted(shas, culprit=culprit)
    gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
    gb.start()
    loop = Bisector(tester, many=_many(tester), width=k)
    res = loop.run(Stage.GIT, gb)
    assert res.first == shas[culprit]
    # 64 candidates (63 untested + the new end): ⌈log_{k+1} 64⌉ rounds, +1 for rounding
    assert loop.rounds <= math.ceil(math.log(64) / math.log(k + 1)) + 1, (k, loop.rounds)
    assert len(calls) == len(set(calls))  # no commit tested twice
    gb.reset()


def test_multisection_rounds_fall_with_more_workers(tmp_path: Path) -> None:
    shas = linear(tmp_path / "r", 64)
    rounds = []
    for k in (1, 3):
        tester, _ = scripted(shas, culprit=37)
        gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
        gb.start()
        loop = Bisector(tester, many=_many(tester), width=k)
        assert loop.run(Stage.GIT, gb).first == shas[37]
        gb.reset()
        rounds.append(loop.rounds)
    assert rounds[1] < rounds[0]


@pytest.mark.parametrize("culprit", ["m3", "t2", "M", "n1"])
def test_multisection_over_a_merge(tmp_path: Path, culprit: str) -> None:
    h = topic_history()
    shas = h.build(tmp_path / "r")
    tester, calls = ancestry_tester(h, shas, culprit)
    gb = GitBisection(tmp_path / "r", [shas["r"]], shas["n3"])
    gb.start()
    assert Bisector(tester, many=_many(tester), width=3).run(Stage.GIT, gb).first == \
        shas[culprit]
    assert len(calls) == len(set(calls))


def test_width_one_is_plain_bisection(tmp_path: Path) -> None:
    shas = linear(tmp_path / "r", 32)
    orders = []
    for many in (False, True):
        tester, calls = scripted(shas, culprit=11)
        gb = GitBisection(tmp_path / "r", [shas[0]], shas[-1])
        gb.start()
        Bisector(tester, many=_many(tester) if many else None, width=1).run(Stage.GIT, gb)
        gb.reset()
        orders.append(calls)
    assert orders[0] == orders[1]
