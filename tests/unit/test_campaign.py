"""Campaigns: persistence, resume after a crash, replay, two-stage mapping.

The tester is scripted (no builds, no VMs); git, SQLite and the campaign logic
are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from bisector import kernel as kernels
from bisector.bisect import Handler, StepOutcome
from bisector.campaign import BisectArgs, CampaignRunner
from bisector.errors import InfraError
from bisector.kernel.base import KernelArtifact, KernelEntry
from bisector.report import write as write_report
from bisector.store import Store
from bisector.verdict import Verdict
from tests.fakes.gitrepo import linear_repo

REPO = Path(__file__).resolve().parents[2]
GRE = str(REPO / "reproducers" / "gre-ecn-mac-corruption.yaml")
G, B, S = Verdict.GOOD, Verdict.BAD, Verdict.SKIP


class Scripted(CampaignRunner):
    """Real campaign logic; commits are judged by a script instead of build+boot."""

    def __init__(self, args: BisectArgs, store: Store, oracle: dict[str, Verdict],
                 crash_after: int | None = None) -> None:
        super().__init__(args, store, Handler())
        self.oracle = oracle
        self.crash_after = crash_after
        self.tested: list[str] = []

    def _test_commit(self, sha: str, step_dir: Path) -> StepOutcome:
        if self.crash_after is not None and len(self.tested) >= self.crash_after:
            raise InfraError("simulated crash (QEMU vanished)")
        self.tested.append(sha)
        return StepOutcome(self.oracle[sha], "scripted", build_s=1.0, boot_s=2.0, test_s=3.0)

    _test_prebuilt = _test_commit


def oracle_for(shas: list[str], culprit: int, skip: tuple[int, ...] = ()) -> dict[str, Verdict]:
    return {s: (S if i in skip else B if i >= culprit else G) for i, s in enumerate(shas)}


def test_git_campaign_finds_culprit_and_reports(tmp_path: Path, tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 40)
    store = Store(tmp_path / "db.sqlite")
    args = BisectArgs(repro=GRE, good="v0", bad="main", tree=str(tmp_path / "linux"))
    r = Scripted(args, store, oracle_for(shas, 23, skip=(20,)))
    cr = r.run()
    assert cr.status == "done" and cr.result["culprit"]["sha"] == shas[23]
    assert cr.result["culprit"]["fixes"] == f'Fixes: {shas[23][:12]} ("change 23")'
    steps = store.steps(cr.campaign.id)
    assert [s.stage for s in steps[:2]] == ["verify", "verify"]
    out = write_report(cr.campaign, steps, cr.status, cr.result, tmp_path / "report")
    md = out["md"].read_text()
    assert f"#regzbot introduced: {shas[23]}" in md and "git bisect log" in md
    assert "<script" not in out["html"].read_text()
    assert (tmp_path / "report" / "bisect.log").read_text().startswith("git bisect start")


def test_resume_after_crash_repeats_no_step(tmp_path: Path, tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 40)
    oracle = oracle_for(shas, 29)
    db = tmp_path / "db.sqlite"
    args = BisectArgs(repro=GRE, good="v0", bad="main", tree=str(tmp_path / "linux"))
    first = Scripted(args, Store(db), oracle, crash_after=4)
    with pytest.raises(InfraError):
        first.run()
    store = Store(db)
    assert store.find_unfinished() is not None
    second = Scripted(args, store, oracle)
    cr = second.run()
    assert cr.result["culprit"]["sha"] == shas[29]
    assert not set(first.tested) & set(second.tested), "a finished step was repeated"
    reference = Scripted(args, Store(tmp_path / "ref.sqlite"), oracle)
    reference.run()
    assert len(first.tested) + len(second.tested) == len(reference.tested)
    assert Store(db).find_unfinished() is None


def test_replay_log_seeds_the_bisection(tmp_path: Path, tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 24)
    oracle = oracle_for(shas, 17)
    args = BisectArgs(repro=GRE, good="v0", bad="main", tree=str(tmp_path / "linux"),
                      verify=False)
    done = Scripted(args, Store(tmp_path / "a.sqlite"), oracle).run()
    log = tmp_path / "bisect.log"
    log.write_text(done.result["bisect_log"])
    replayed = Scripted(BisectArgs(**{**args.__dict__, "replay": str(log)}),
                        Store(tmp_path / "b.sqlite"), oracle)
    cr = replayed.run()
    assert cr.result["culprit"]["sha"] == shas[17] and replayed.tested == []


class FakeDistro:
    """A prebuilt source whose kernels are based on tags of the test repo."""

    prefix = "fakedistro"
    upstream: ClassVar[dict[int, str]] = {1: "v0", 2: "v0", 3: "v10", 4: "v20", 5: "v30"}

    def resolve(self, ref: str) -> KernelArtifact:
        return KernelArtifact(spec=f"fakedistro:{ref}", release=ref, image=Path("/dev/null"),
                              modules=None, config=None, root=Path("/tmp"),
                              meta={"upstream": self.upstream[int(ref)]})

    def available(self) -> list[KernelEntry]:
        return [KernelEntry(f"fakedistro:{n}", str(n)) for n in self.upstream]


@pytest.fixture
def fakedistro() -> object:
    kernels.register("fakedistro", FakeDistro)
    yield FakeDistro
    kernels.REGISTRY.pop("fakedistro")


def test_two_stage_maps_to_upstream_tags(tmp_path: Path, tmp_cache: Path,
                                         fakedistro: object) -> None:
    shas = linear_repo(tmp_path / "linux", 30, tags={10: "v10", 20: "v20", 30: "v30"})
    oracle = oracle_for(shas, 14)
    oracle.update({"fakedistro:1": G, "fakedistro:2": G, "fakedistro:3": G,
                   "fakedistro:4": B, "fakedistro:5": B})
    args = BisectArgs(repro=GRE, good="fakedistro:1", bad="fakedistro:5",
                      tree=str(tmp_path / "linux"))
    cr = Scripted(args, Store(tmp_path / "db.sqlite"), oracle).run()
    assert cr.result["upstream"] == {"old_spec": "fakedistro:3", "new_spec": "fakedistro:4",
                                     "old_tag": "v10", "new_tag": "v20"}
    assert cr.status == "done" and cr.result["culprit"]["sha"] == shas[14]


def test_two_stage_says_when_distro_is_not_vanilla(tmp_path: Path, tmp_cache: Path,
                                                   fakedistro: object) -> None:
    shas = linear_repo(tmp_path / "linux", 30, tags={10: "v10", 20: "v20", 30: "v30"})
    oracle = {s: G for s in shas}  # upstream never shows the bug: a distro-only regression
    oracle.update({"fakedistro:1": G, "fakedistro:2": G, "fakedistro:3": G,
                   "fakedistro:4": B, "fakedistro:5": B})
    args = BisectArgs(repro=GRE, good="fakedistro:1", bad="fakedistro:5",
                      tree=str(tmp_path / "linux"))
    cr = Scripted(args, Store(tmp_path / "db.sqlite"), oracle).run()
    assert cr.status == "mismatch"
    assert "not behave like the upstream tag" in cr.result["mismatch"]
    assert "v20" in cr.result["mismatch"]


def test_two_stage_same_upstream_tag(tmp_path: Path, tmp_cache: Path, fakedistro: object
                                     ) -> None:
    linear_repo(tmp_path / "linux", 3)
    oracle = {"fakedistro:1": G, "fakedistro:2": B, "fakedistro:5": B}
    args = BisectArgs(repro=GRE, good="fakedistro:1", bad="fakedistro:2",
                      tree=str(tmp_path / "linux"))
    cr = Scripted(args, Store(tmp_path / "db.sqlite"), oracle).run()
    assert cr.status == "mismatch" and "distro's own patches" in cr.result["mismatch"]


def test_endpoint_mismatch_stops(tmp_path: Path, tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 8)
    oracle = {s: G for s in shas}  # "bad" endpoint does not reproduce
    args = BisectArgs(repro=GRE, good="v0", bad="main", tree=str(tmp_path / "linux"))
    cr = Scripted(args, Store(tmp_path / "db.sqlite"), oracle).run()
    assert cr.status == "mismatch" and "should be BAD but is GOOD" in cr.result["mismatch"]


def test_list_campaign_and_endpoint_mismatch(tmp_path: Path, tmp_cache: Path,
                                             fakedistro: object) -> None:
    oracle = {"fakedistro:1": G, "fakedistro:2": G, "fakedistro:3": B, "fakedistro:4": B,
              "fakedistro:5": B}
    args = BisectArgs(repro=GRE, good="fakedistro:1", bad="fakedistro:5")
    cr = Scripted(args, Store(tmp_path / "a.sqlite"), oracle).run()
    assert cr.status == "done"
    assert cr.result["stages"][0]["first"] == "fakedistro:3"
    assert cr.result["stages"][0]["last_old"] == "fakedistro:2"
    oracle["fakedistro:5"] = G  # the "bad" kernel does not reproduce
    cr = Scripted(args, Store(tmp_path / "b.sqlite"), oracle).run()
    assert cr.status == "mismatch" and "endpoint fakedistro:5 should be BAD" in \
        cr.result["mismatch"]
