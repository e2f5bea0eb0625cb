"""Campaigns: persistence, resume after a crash, replay, two-stage mapping.

The tester is scripted (no builds, no VMs); git, SQLite and the campaign logic
are real.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from bisector import kernel as kernels
from bisector.campaign import BisectArgs, CampaignRunner
from bisector.errors import InfraError, UserError
from bisector.kernel.base import KernelArtifact, KernelEntry
from bisector.outcomes import CampaignResult, CampaignStatus, Stage, Step
from bisector.report import write as write_report
from bisector.search import Handler
from bisector.store import Store
from bisector.verdict import Verdict
from tests.fakes.gitrepo import git, linear_repo

REPO = Path(__file__).resolve().parents[2]
GRE = str(REPO / "reproducers" / "gre-ecn-mac-corruption.yaml")
G, B, S = Verdict.GOOD, Verdict.BAD, Verdict.SKIP


class Scripted:
    """A StepTester: candidates are judged by a script instead of build+boot."""

    def __init__(self, oracle: dict[str, Verdict], crash_after: int | None = None,
                 revert: Verdict = Verdict.GOOD) -> None:
        self.oracle = oracle
        self.crash_after = crash_after
        #: what a commit the oracle does not know (the culprit's revert) tests as
        self.revert = revert
        self.tested: list[str] = []
        self.stages: list[Stage] = []

    def __call__(self, stage: Stage, candidate: str, step_dir: Path) -> Step:
        if self.crash_after is not None and len(self.tested) >= self.crash_after:
            raise InfraError("simulated crash (QEMU vanished)")
        self.tested.append(candidate)
        self.stages.append(stage)
        return Step(stage, candidate, self.oracle.get(candidate, self.revert), "scripted",
                    build_s=1.0, boot_s=2.0, test_s=3.0, run_dir=str(step_dir))

    @property
    def searched(self) -> list[str]:
        """The candidates tested by the search (culprit verification's re-tests left out)."""
        return [c for c, st in zip(self.tested, self.stages, strict=True)
                if st is not Stage.CONFIRM]


def campaign(args: BisectArgs, store: Store, tester: Scripted) -> CampaignResult:
    return CampaignRunner(args, store, Handler(), tester).run()


def oracle_for(shas: list[str], culprit: int, skip: tuple[int, ...] = ()) -> dict[str, Verdict]:
    return {s: (S if i in skip else B if i >= culprit else G) for i, s in enumerate(shas)}


EVIL = "net: <script>alert(1)</script> [x](javascript:alert(2)) | pipe"


def test_git_campaign_finds_culprit_and_reports(tmp_path: Path, tmp_cache: Path) -> None:
    tree = tmp_path / "linux"
    shas = linear_repo(tree, 40)
    # the culprit's subject is hostile: it must come out inert in both reports
    (tree / "evil.c").write_text("int evil;\n")
    git(tree, "add", "evil.c")
    git(tree, "commit", "-q", "-m", EVIL)
    shas.append(git(tree, "rev-parse", "HEAD"))
    git(tree, "commit", "-q", "--allow-empty", "-m", "after")
    shas.append(git(tree, "rev-parse", "HEAD"))
    store = Store(tmp_path / "db.sqlite")
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tree))
    cr = campaign(args, store, Scripted(oracle_for(shas, 41, skip=(20,))))
    assert cr.status is CampaignStatus.FOUND and cr.culprit is not None
    assert cr.culprit.sha == shas[41]
    steps = store.steps(cr.campaign_id)
    assert [s.stage for s in steps[:2]] == [Stage.VERIFY, Stage.VERIFY]
    row = store.get(cr.campaign_id)
    assert row is not None
    out = write_report(row, steps, cr, tmp_path / "report")
    md, html = out["md"].read_text(), out["html"].read_text()
    assert f'Fixes: {shas[41][:12]} ("{EVIL}")' in md
    assert f"#regzbot introduced: {shas[41]}" in md and "git bisect log" in md
    assert "<script" not in html and "&lt;script&gt;" in html
    culprit_line = next(ln for ln in md.splitlines() if ln.startswith(f"**{shas[41][:12]}"))
    # every markup character is escaped: no live tag, link or table cell
    assert not re.search(r"(?<!\\)[<>\[\]()|]", culprit_line.split("** ", 1)[1])
    assert (tmp_path / "report" / "bisect.log").read_text().startswith("git bisect start")


def test_fix_report_says_fixed_by_not_fixes(tmp_path: Path, tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 20)
    oracle = {s: (G if i >= 13 else B) for i, s in enumerate(shas)}
    store = Store(tmp_path / "db.sqlite")
    args = BisectArgs(repro=GRE, good=["main"], bad=["v0"], tree=str(tmp_path / "linux"),
                      find_fix=True)
    cr = campaign(args, store, Scripted(oracle))
    assert cr.culprit is not None and cr.culprit.sha == shas[13]
    row = store.get(cr.campaign_id)
    assert row is not None
    md = write_report(row, store.steps(cr.campaign_id), cr, tmp_path / "r")["md"].read_text()
    assert f'fixed by: {shas[13][:12]} ("change 13")' in md
    assert f"stable backport: commit {shas[13]} upstream" in md
    assert "Fixes:" not in md and "#regzbot" not in md


def test_resume_after_crash_repeats_no_step(tmp_path: Path, tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 40)
    oracle = oracle_for(shas, 29)
    db = tmp_path / "db.sqlite"
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"))
    first = Scripted(oracle, crash_after=4)
    with pytest.raises(InfraError):
        campaign(args, Store(db), first)
    store = Store(db)
    assert store.find_unfinished() is not None
    second = Scripted(oracle)
    cr = campaign(args, store, second)
    assert cr.culprit is not None and cr.culprit.sha == shas[29]
    assert not set(first.tested) & set(second.tested), "a finished step was repeated"
    reference = Scripted(oracle)
    campaign(args, Store(tmp_path / "ref.sqlite"), reference)
    assert len(first.tested) + len(second.tested) == len(reference.tested)
    assert Store(db).find_unfinished() is None


def test_resume_after_a_relative_path_start(tmp_path: Path, tmp_cache: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shas = linear_repo(tmp_path / "linux", 30)
    oracle = oracle_for(shas, 11)
    db = tmp_path / "db.sqlite"
    monkeypatch.chdir(tmp_path)
    rel = BisectArgs(repro=os.path.relpath(GRE, tmp_path), good=["v0"], bad=["main"],
                     tree="linux")
    first = Scripted(oracle, crash_after=2)
    with pytest.raises(InfraError):
        campaign(rel, Store(db), first)
    stored = Store(db).find_unfinished()
    assert stored is not None and stored.args["tree"] == str(tmp_path / "linux")
    # `bisector resume` rebuilds the arguments from what was stored (absolute paths)
    second = Scripted(oracle)
    cr = campaign(BisectArgs(**stored.args), Store(db), second)
    assert cr.campaign_id == stored.id, "resume opened a new campaign"
    assert not set(first.tested) & set(second.tested)


def test_campaign_that_cannot_start_is_not_left_running(tmp_path: Path, tmp_cache: Path
                                                        ) -> None:
    linear_repo(tmp_path / "linux", 4)
    db = tmp_path / "db.sqlite"
    bad_ref = BisectArgs(repro=GRE, good=["v0"], bad=["no-such-branch"],
                         tree=str(tmp_path / "linux"))
    with pytest.raises(UserError, match="no-such-branch"):
        campaign(bad_ref, Store(db), Scripted({}))
    assert Store(db).campaigns() == []  # checked before anything was recorded
    backwards = BisectArgs(repro=GRE, good=["main"], bad=["v0"], tree=str(tmp_path / "linux"),
                           verify=False)
    with pytest.raises(UserError, match="git bisect refused"):
        campaign(backwards, Store(db), Scripted({}))
    (row,) = Store(db).campaigns()
    assert row.status is CampaignStatus.FAILED and Store(db).find_unfinished() is None
    assert "git bisect refused" in (row.result or {}).get("reason", "")


def test_replay_log_seeds_the_bisection_and_the_endpoint_checks(tmp_path: Path,
                                                                tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 24)
    oracle = oracle_for(shas, 17)
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"))
    done = campaign(args, Store(tmp_path / "a.sqlite"), Scripted(oracle))
    log = tmp_path / "bisect.log"
    log.write_text(done.bisect_log)
    replayed = Scripted(oracle)
    cr = campaign(BisectArgs(**{**args.__dict__, "replay": str(log)}),
                  Store(tmp_path / "b.sqlite"), replayed)
    assert cr.culprit is not None and cr.culprit.sha == shas[17]
    assert replayed.searched == []  # endpoints verified from the log too: nothing rebuilt


def test_several_good_endpoints_are_all_used(tmp_path: Path, tmp_cache: Path) -> None:
    tree = tmp_path / "linux"
    shas = linear_repo(tree, 20)
    oracle = oracle_for(shas, 15)
    tester = Scripted(oracle)
    args = BisectArgs(repro=GRE, good=["v0", shas[12]], bad=["main"], tree=str(tree))
    cr = campaign(args, Store(tmp_path / "db.sqlite"), tester)
    assert cr.culprit is not None and cr.culprit.sha == shas[15]
    assert cr.range is not None and cr.range.old_shas == [shas[0], shas[12]]
    assert shas[12] in tester.tested[:3]  # verified like the other endpoints
    assert not set(tester.tested) & set(shas[1:12])  # nothing below the second good end


def test_several_bad_endpoints_are_refused(tmp_path: Path, tmp_cache: Path) -> None:
    linear_repo(tmp_path / "linux", 4)
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main", "v0"], tree=str(tmp_path / "linux"))
    with pytest.raises(UserError, match="--bad takes exactly one"):
        campaign(args, Store(tmp_path / "db.sqlite"), Scripted({}))


class FakeDistro:
    """A prebuilt source whose kernels are based on tags of the test repo."""

    prefix = "fakedistro"
    upstream: ClassVar[dict[int, str]] = {1: "v0", 2: "v0", 3: "v10", 4: "v20", 5: "v30"}

    def resolve(self, ref: str) -> KernelArtifact:
        return KernelArtifact(spec=f"fakedistro:{ref}", release=ref, image=Path("/dev/null"),
                              modules=None, config=None, root=Path("/tmp"),
                              upstream=self.upstream[int(ref)])

    def available(self) -> list[KernelEntry]:
        return [KernelEntry(f"fakedistro:{n}", str(n), upstream=u)
                for n, u in self.upstream.items()]


@pytest.fixture
def fakedistro() -> Iterator[type[FakeDistro]]:
    kernels.register("fakedistro", FakeDistro)
    yield FakeDistro
    kernels.REGISTRY.pop("fakedistro")


DISTRO_ORACLE = {"fakedistro:1": G, "fakedistro:2": G, "fakedistro:3": G, "fakedistro:4": B,
                 "fakedistro:5": B}


def test_two_stage_maps_to_upstream_tags(tmp_path: Path, tmp_cache: Path,
                                         fakedistro: object) -> None:
    shas = linear_repo(tmp_path / "linux", 30, tags={10: "v10", 20: "v20", 30: "v30"})
    oracle = {**oracle_for(shas, 14), **DISTRO_ORACLE}
    args = BisectArgs(repro=GRE, good=["fakedistro:1"], bad=["fakedistro:5"],
                      tree=str(tmp_path / "linux"))
    cr = campaign(args, Store(tmp_path / "db.sqlite"), Scripted(oracle))
    assert cr.upstream is not None and cr.upstream.model_dump() == {
        "old_spec": "fakedistro:3", "new_spec": "fakedistro:4", "old_tag": "v10",
        "new_tag": "v20"}
    assert cr.status is CampaignStatus.FOUND and cr.culprit is not None
    assert cr.culprit.sha == shas[14]


def test_two_stage_says_when_distro_is_not_vanilla(tmp_path: Path, tmp_cache: Path,
                                                   fakedistro: object) -> None:
    shas = linear_repo(tmp_path / "linux", 30, tags={10: "v10", 20: "v20", 30: "v30"})
    oracle = {**{s: G for s in shas}, **DISTRO_ORACLE}  # upstream never shows the bug
    args = BisectArgs(repro=GRE, good=["fakedistro:1"], bad=["fakedistro:5"],
                      tree=str(tmp_path / "linux"))
    cr = campaign(args, Store(tmp_path / "db.sqlite"), Scripted(oracle))
    assert cr.status is CampaignStatus.MISMATCH
    assert "not behave like the upstream tag" in cr.reason and "v20" in cr.reason


def test_two_stage_same_upstream_tag(tmp_path: Path, tmp_cache: Path, fakedistro: object
                                     ) -> None:
    linear_repo(tmp_path / "linux", 3)
    oracle = {"fakedistro:1": G, "fakedistro:2": B, "fakedistro:5": B}
    args = BisectArgs(repro=GRE, good=["fakedistro:1"], bad=["fakedistro:2"],
                      tree=str(tmp_path / "linux"))
    cr = campaign(args, Store(tmp_path / "db.sqlite"), Scripted(oracle))
    assert cr.status is CampaignStatus.MISMATCH and "distro's own patches" in cr.reason


def test_endpoint_mismatch_stops(tmp_path: Path, tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 8)
    oracle = {s: G for s in shas}  # "bad" endpoint does not reproduce
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"))
    cr = campaign(args, Store(tmp_path / "db.sqlite"), Scripted(oracle))
    assert cr.status is CampaignStatus.MISMATCH and "should be BAD but is GOOD" in cr.reason


@pytest.mark.parametrize("find_fix", [False, True])
def test_list_campaign_answer_and_its_upstream_meaning(tmp_path: Path, tmp_cache: Path,
                                                       fakedistro: object,
                                                       find_fix: bool) -> None:
    oracle = dict(DISTRO_ORACLE)
    if find_fix:  # broken up to 3, fixed from 4 on
        oracle = {k: (B if v is G else G) for k, v in oracle.items()}
        args = BisectArgs(repro=GRE, good=["fakedistro:5"], bad=["fakedistro:1"],
                          find_fix=True)
    else:
        args = BisectArgs(repro=GRE, good=["fakedistro:1"], bad=["fakedistro:5"])
    cr = campaign(args, Store(tmp_path / "a.sqlite"), Scripted(oracle))
    assert cr.status is CampaignStatus.FOUND
    assert (cr.first_kernel, cr.last_old_kernel) == ("fakedistro:4", "fakedistro:3")
    assert (cr.first_upstream, cr.last_old_upstream) == ("v20", "v10")


def test_list_campaign_endpoint_mismatch(tmp_path: Path, tmp_cache: Path,
                                         fakedistro: object) -> None:
    oracle = {**DISTRO_ORACLE, "fakedistro:5": G}  # the "bad" kernel does not reproduce
    args = BisectArgs(repro=GRE, good=["fakedistro:1"], bad=["fakedistro:5"])
    cr = campaign(args, Store(tmp_path / "b.sqlite"), Scripted(oracle))
    assert cr.status is CampaignStatus.MISMATCH
    assert "endpoint fakedistro:5 should be BAD" in cr.reason


def test_step_reasons_cannot_break_the_steps_table(tmp_path: Path, tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 6)

    class Noisy(Scripted):
        def __call__(self, stage: Stage, candidate: str, step_dir: Path) -> Step:
            step = super().__call__(stage, candidate, step_dir)
            step.reason = "first line\n| injected | row |\n<img src=x onerror=alert(1)>"
            return step

    store = Store(tmp_path / "db.sqlite")
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"))
    cr = campaign(args, store, Noisy(oracle_for(shas, 3)))
    row = store.get(cr.campaign_id)
    assert row is not None
    md = write_report(row, store.steps(cr.campaign_id), cr, tmp_path / "r")["md"].read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and "scripted" not in ln
             and ("GOOD" in ln or "BAD" in ln)]
    assert len(table) == len(store.steps(cr.campaign_id))  # one row per step, none injected
    # 9 columns = 10 unescaped pipes: the injected pipes and newline split no cell
    assert all(len(re.findall(r"(?<!\\)\|", ln)) == 10 for ln in table)
    assert not re.search(r"(?<!\\)<img", md)


def test_bisect_passes_guest_size_to_every_boot(tmp_path: Path, tmp_cache: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`bisect --memory/--cpus` reach the runner (the help says the options are shared)."""
    from bisector import cli
    from bisector.tester import KernelTester

    linear_repo(tmp_path / "linux", 2)
    seen: list[tuple[int, int]] = []

    def fake_call(self: KernelTester, stage: Stage, candidate: str, step_dir: Path) -> Step:
        seen.append((self.opts.memory_mb, self.opts.cpus))
        raise InfraError("stop here")

    monkeypatch.setattr(KernelTester, "__call__", fake_call)
    code = cli.main(["bisect", "--repro", GRE, "--tree", str(tmp_path / "linux"), "--good", "v0",
                     "--bad", "main", "--memory", "2048", "--cpus", "1"])
    assert code == 3 and seen == [(2048, 1)]


class Flaky(Scripted):
    """``first`` answers for the first test of a commit, the oracle afterwards."""

    def __init__(self, oracle: dict[str, Verdict], first: dict[str, Verdict]) -> None:
        super().__init__(oracle)
        self.first = dict(first)

    def __call__(self, stage: Stage, candidate: str, step_dir: Path) -> Step:
        step = super().__call__(stage, candidate, step_dir)
        if candidate in self.first:
            step.verdict = self.first.pop(candidate)
        return step


def test_a_culprit_is_verified_before_it_is_the_answer(tmp_path: Path, tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 24)
    store = Store(tmp_path / "db.sqlite")
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"))
    # 21: no later commit touches its file, so its revert applies on the bad end
    tester = Scripted(oracle_for(shas, 21))
    cr = campaign(args, store, tester)
    assert cr.status is CampaignStatus.FOUND and cr.verification is not None
    v = cr.verification
    assert v.status.value == "confirmed" and v.confidence >= 0.95
    assert v.revert.status.value == "applied" and v.revert.result == "good"
    confirm = [s for s in store.steps(cr.campaign_id) if s.stage is Stage.CONFIRM]
    assert {s.candidate for s in confirm} >= {shas[21], shas[20]}  # re-tested, recorded
    row = store.get(cr.campaign_id)
    assert row is not None
    md = write_report(row, store.steps(cr.campaign_id), cr, tmp_path / "r")["md"].read_text()
    assert "### Verification: confirmed" in md and "| parent |" in md


def test_a_flake_during_the_search_gives_a_doubtful_culprit(
        tmp_path: Path, tmp_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bug is in 12, but 12 passed once by chance: the search ends at a later
    commit, whose parent then fails again — doubtful, never presented as the answer."""
    shas = linear_repo(tmp_path / "linux", 24)
    truth = oracle_for(shas, 12)
    # make every first test of 12..16 pass by chance, so the search ends at 17
    tester = Flaky(truth, {shas[i]: G for i in range(12, 17)})
    store = Store()  # the default one, which the CLI's summary reads
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"),
                      strategy="plain")  # auto would switch to the Bayesian search
    cr = campaign(args, store, tester)
    assert cr.culprit is not None and cr.culprit.sha != shas[12]  # the search was misled
    assert cr.status is CampaignStatus.DOUBTFUL and cr.verification is not None
    assert any(f.startswith("retest") for f in cr.verification.flags)
    from bisector.cli import _print_campaign

    assert _print_campaign(cr, tmp_path / "r") == 1  # not a named answer
    out = capsys.readouterr().out
    assert out.startswith("doubtful: the bisection ended at") and "Fixes:" not in out


class Noisy(Scripted):
    """A flaky bug: a run on a buggy commit shows it with probability ``p`` (seeded)."""

    def __init__(self, culprit_of: dict[str, bool], p: float, seed: int,
                 unknown_buggy: bool = False) -> None:
        super().__init__({})
        import random

        self.buggy, self.p, self.rng = culprit_of, p, random.Random(seed)
        self.unknown_buggy = unknown_buggy  # commits not in culprit_of (a revert, say)

    def __call__(self, stage: Stage, candidate: str, step_dir: Path) -> Step:
        self.tested.append(candidate)
        self.stages.append(stage)
        shows = self.buggy.get(candidate, self.unknown_buggy) and self.rng.random() < self.p
        return Step(stage, candidate, B if shows else G, "scripted flaky", build_s=1.0,
                    boot_s=2.0, test_s=3.0, run_dir=str(step_dir))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bayes_names_the_culprit_of_a_flaky_bug(tmp_path: Path, tmp_cache: Path,
                                                seed: int) -> None:
    shas = linear_repo(tmp_path / "linux", 30)
    buggy = {s: i >= 19 for i, s in enumerate(shas)}
    tester = Noisy(buggy, p=0.5, seed=seed)
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"),
                      strategy="bayes", verify=False, verify_culprit=False)
    cr = campaign(args, Store(tmp_path / "db.sqlite"), tester)
    assert cr.strategy == "bayes" and cr.culprit is not None, cr.reason
    assert cr.culprit.sha == shas[19]
    assert cr.hypotheses[0].commit == shas[19] and cr.hypotheses[0].probability >= 0.95
    assert f"git bisect bad {shas[19]}" in cr.bisect_log
    assert len(tester.tested) < 120  # repeats where needed, not everywhere


@pytest.mark.parametrize("seed", [1, 2])
def test_bayes_finds_the_fix_of_a_flaky_bug_and_verifies_it(tmp_path: Path, tmp_cache: Path,
                                                            seed: int) -> None:
    """--find-fix with the Bayesian search: the bug shows half the time up to 18 and is
    fixed from 19; a fixed kernel's passes prove little alone (a broken one passes as
    often), so the engine weighs them against the broken side's rate.  The revert of
    the fix on top of the fixed end brings the bug back (``unknown_buggy``)."""
    shas = linear_repo(tmp_path / "linux", 30)
    buggy = {s: i < 19 for i, s in enumerate(shas)}
    tester = Noisy(buggy, p=0.5, seed=seed, unknown_buggy=True)
    args = BisectArgs(repro=GRE, bad=["v0"], good=["main"], tree=str(tmp_path / "linux"),
                      find_fix=True, strategy="bayes")
    cr = campaign(args, Store(tmp_path / "db.sqlite"), tester)
    assert cr.strategy == "bayes" and cr.status is CampaignStatus.FOUND, cr.reason
    assert cr.culprit is not None and cr.culprit.sha == shas[19]
    assert cr.hypotheses[0].commit == shas[19] and cr.hypotheses[0].probability >= 0.95
    assert cr.hypotheses[0].rate == pytest.approx(0.5, abs=0.25)  # the broken side's rate
    assert f"git bisect fixed {shas[19]}" in cr.bisect_log
    assert f"git bisect broken {shas[18]}" in cr.bisect_log
    assert cr.verification is not None and cr.verification.status.value == "confirmed"


def test_disagreeing_repeats_switch_auto_to_the_bayesian_search_in_a_fix_hunt(
        tmp_path: Path, tmp_cache: Path) -> None:
    """--find-fix: broken up to 11, fixed from 12, but the first tests of 7..11 pass by
    chance; the verification's retests disagree, so auto hands over to the Bayesian
    search, which names the real fix (its revert brings the bug back: BAD)."""
    shas = linear_repo(tmp_path / "linux", 24)
    fixed = {s: (G if i >= 12 else B) for i, s in enumerate(shas)}
    tester = Flaky(fixed, {shas[i]: G for i in range(7, 12)})
    tester.revert = B
    args = BisectArgs(repro=GRE, bad=["v0"], good=["main"], tree=str(tmp_path / "linux"),
                      find_fix=True)
    cr = campaign(args, Store(tmp_path / "db.sqlite"), tester)
    assert cr.strategy == "bayes" and "repeats disagree" in cr.strategy_note
    assert cr.status is CampaignStatus.FOUND, cr.reason
    assert cr.culprit is not None and cr.culprit.sha == shas[12]


def test_plain_bisection_on_a_flaky_bug_is_honest_when_it_is_wrong(tmp_path: Path,
                                                                   tmp_cache: Path) -> None:
    """The same flaky bug with plain bisection: whatever it names, verification says
    whether it holds — a wrong culprit is never presented as the answer."""
    shas = linear_repo(tmp_path / "linux", 30)
    buggy = {s: i >= 19 for i, s in enumerate(shas)}
    wrong = 0
    for seed in range(4):
        store = Store(tmp_path / f"db{seed}.sqlite")
        args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"),
                          strategy="plain", verify=False)
        cr = campaign(args, store, Noisy(buggy, p=0.5, seed=seed))
        if cr.culprit is not None and cr.culprit.sha != shas[19]:
            wrong += 1
            assert cr.status is not CampaignStatus.FOUND, "a wrong culprit was the answer"
    assert wrong >= 1  # plain bisection does get misled by this bug


def test_disagreeing_repeats_switch_auto_to_the_bayesian_search(
        tmp_path: Path, tmp_cache: Path) -> None:
    """As above, but ``--strategy auto``: the verification's retest disagrees with the
    search's verdict, so the Bayesian search takes over with every run made so far —
    and names the real culprit instead of a doubtful one."""
    shas = linear_repo(tmp_path / "linux", 24)
    tester = Flaky(oracle_for(shas, 12), {shas[i]: G for i in range(12, 17)})
    store = Store(tmp_path / "db.sqlite")
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"))
    cr = campaign(args, store, tester)
    assert cr.strategy == "bayes" and "repeats disagree" in cr.strategy_note
    assert cr.status is CampaignStatus.FOUND, cr.reason
    assert cr.culprit is not None and cr.culprit.sha == shas[12]
