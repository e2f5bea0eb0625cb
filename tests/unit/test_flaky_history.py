"""The Bayes stage's evidence (bisector/flaky.py): each iteration is a run, the costs
are the ones measured, and the posterior after every run is kept -- and shown by the
report."""

from __future__ import annotations

import itertools
import json
import random
import shutil
from pathlib import Path

import pytest

from bisector.campaign import BisectArgs
from bisector.flaky import (
    BayesOptions,
    MeasuredCosts,
    bayes_search,
    bin_starts,
    replay,
    runs_of,
)
from bisector.outcomes import Stage, Step, Terms
from bisector.report import write as write_report
from bisector.search import Handler
from bisector.search.bayes import Costs
from bisector.store import Store
from bisector.verdict import Verdict
from tests.fakes.gitrepo import linear_repo
from tests.unit.test_campaign import GRE, Noisy, campaign

G, B, S = Verdict.GOOD, Verdict.BAD, Verdict.SKIP


def step_with(tmp_path: Path, verdicts: list[Verdict], combined: Verdict = B) -> Step:
    """A step whose run directory holds one iteration file per verdict."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for i, v in enumerate(verdicts, 1):
        (run_dir / f"iteration-{i}.json").write_text(json.dumps({"verdict": v.value}))
    return Step(Stage.GIT, "c" * 40, combined, "scripted", run_dir=str(run_dir))


class Ctx:
    """A StageContext whose steps are a flaky bug: BAD with rate p on commits >= culprit."""

    terms = Terms()
    handler = Handler()
    width = 1

    def __init__(self, shas: list[str], culprit: int, p: float, seed: int = 0,
                 repeat: Path | None = None) -> None:
        self.bad = {s for i, s in enumerate(shas) if i >= culprit}
        self.p, self.rng = p, random.Random(seed)
        #: where to write three iterations per step (None: one run, no files)
        self.repeat = repeat
        self.steps: list[Step] = []

    def retest(self, stage: Stage, candidate: str) -> Step:
        draws = [B if candidate in self.bad and self.rng.random() < self.p else G
                 for _ in range(3 if self.repeat else 1)]
        step = Step(stage, candidate, B if B in draws else G, "scripted", build_s=1.0,
                    boot_s=2.0, test_s=3.0)
        if self.repeat:
            run_dir = self.repeat / f"step-{len(self.steps)}"
            run_dir.mkdir(parents=True)
            for i, v in enumerate(draws, 1):
                (run_dir / f"iteration-{i}.json").write_text(json.dumps({"verdict": v.value}))
            step.run_dir = str(run_dir)
        self.steps.append(step)
        return step

    test = retest

    def test_many(self, stage: Stage, cands: list[str]) -> list[Step]:
        return [self.retest(stage, c) for c in cands]


@pytest.fixture
def searched(tmp_path: Path) -> tuple[Path, list[str], Ctx]:
    """A finished Bayes search over a 40-commit line whose culprit is commit 23 (p = 0.5)."""
    tree = tmp_path / "linux"
    shas = linear_repo(tree, 40)
    ctx = Ctx(shas, 23, 0.5)
    return tree, shas, ctx


# ---------------------------------------------------------------- runs and costs

def test_each_iteration_of_a_step_is_one_run(tmp_path: Path) -> None:
    assert runs_of(step_with(tmp_path, [G, G, B])) == [G, G, B]


def test_iterations_are_taken_in_numeric_order(tmp_path: Path) -> None:
    verdicts = [G] * 9 + [B, S]  # iteration-10 and -11 sort after iteration-9
    assert runs_of(step_with(tmp_path, verdicts)) == verdicts


def test_a_step_without_iteration_files_is_one_run() -> None:
    assert runs_of(Step(Stage.GIT, "c" * 40, B, "replayed")) == [B]


def test_measured_costs_start_from_the_defaults() -> None:
    assert MeasuredCosts().costs == Costs()


def test_measured_costs_follow_the_steps() -> None:
    m = MeasuredCosts(Costs(build_s=600.0, boot_s=5.0, run_s=10.0))
    m.add(Step(Stage.GIT, "c" * 40, G, "", build_s=10.0, boot_s=3.0, test_s=12.0), runs=3)
    assert m.costs == Costs(build_s=305.0, boot_s=4.0, run_s=5.5)


def test_bins_cover_the_range_in_at_most_64_equal_stretches() -> None:
    starts = bin_starts(1000)
    assert len(starts) <= 64 and starts[0] == 0 and starts[-1] < 1000
    assert {b - a for a, b in itertools.pairwise(starts)} == {16}


def test_a_short_range_has_a_bin_per_commit() -> None:
    assert bin_starts(5) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- the history

def test_the_stage_keeps_one_snapshot_per_run(searched: tuple[Path, list[str], Ctx]) -> None:
    tree, shas, ctx = searched
    out = bayes_search(ctx, tree, [shas[0]], shas[-1], BayesOptions())
    assert [r.commit for r in out.history.runs] == [s.candidate for s in ctx.steps]
    assert [r.verdict for r in out.history.runs] == [s.verdict for s in ctx.steps]


def test_the_stage_feeds_every_iteration(searched: tuple[Path, list[str], Ctx],
                                        tmp_path: Path) -> None:
    tree, shas, _ = searched
    ctx = Ctx(shas, 23, 0.5, repeat=tmp_path / "runs")
    out = bayes_search(ctx, tree, [shas[0]], shas[-1], BayesOptions())
    assert [r.iteration for r in out.history.runs] == [1, 2, 3] * len(ctx.steps)


def test_each_snapshot_holds_all_the_mass(searched: tuple[Path, list[str], Ctx]) -> None:
    tree, shas, ctx = searched
    out = bayes_search(ctx, tree, [shas[0]], shas[-1], BayesOptions())
    for run in out.history.runs:
        assert sum(run.mass) + run.flake == pytest.approx(1.0, abs=1e-4)


def test_the_last_snapshot_names_the_answer(searched: tuple[Path, list[str], Ctx]) -> None:
    tree, shas, ctx = searched
    out = bayes_search(ctx, tree, [shas[0]], shas[-1], BayesOptions())
    last = out.history.runs[-1]
    assert out.stage.first == shas[23] == last.top
    assert last.top_probability >= 0.95


def test_flake_is_among_the_hypotheses(searched: tuple[Path, list[str], Ctx]) -> None:
    tree, shas, ctx = searched
    out = bayes_search(ctx, tree, [shas[0]], shas[-1], BayesOptions())
    assert any(h.commit is None for h in out.hypotheses)


def test_replay_rebuilds_the_recorded_history(searched: tuple[Path, list[str], Ctx]) -> None:
    tree, shas, ctx = searched
    out = bayes_search(ctx, tree, [shas[0]], shas[-1], BayesOptions())
    assert replay(tree, [shas[0]], shas[-1], ctx.steps) == out.history


# ---------------------------------------------------------------- the report

def test_the_report_of_a_bayes_campaign_shows_its_posterior(tmp_path: Path,
                                                            tmp_cache: Path) -> None:
    shas = linear_repo(tmp_path / "linux", 30)
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tmp_path / "linux"),
                      strategy="bayes", verify=False, verify_culprit=False)
    store = Store(tmp_path / "db.sqlite")
    cr = campaign(args, store, Noisy({s: i >= 19 for i, s in enumerate(shas)}, p=0.5, seed=1))
    row = store.get(cr.campaign_id)
    assert row is not None
    steps = store.steps(cr.campaign_id)
    out = write_report(row, steps, cr, tmp_path / "r")
    html, md = out["html"].read_text(), out["md"].read_text()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="posterior"' in html
    assert out["svg"].read_text().count('<g class="run">') == html.count('<g class="run">')
    section = md.split("## Bayesian search: the runs that fed the posterior", 1)[1]
    table = [ln for ln in section.split("\n## ", 1)[0].splitlines() if ln.startswith("| ")]
    assert len(table) - 1 == sum(s.stage is Stage.GIT for s in steps)  # header; a run a step


def test_a_stored_history_is_shown_without_the_tree(tmp_path: Path, tmp_cache: Path) -> None:
    tree = tmp_path / "linux"
    shas = linear_repo(tree, 30)
    args = BisectArgs(repro=GRE, good=["v0"], bad=["main"], tree=str(tree), strategy="bayes",
                      verify=False, verify_culprit=False)
    store = Store(tmp_path / "db.sqlite")
    cr = campaign(args, store, Noisy({s: i >= 19 for i, s in enumerate(shas)}, p=0.5, seed=2))
    steps = store.steps(cr.campaign_id)
    assert cr.range is not None
    cr.posterior = replay(tree, cr.range.old_shas, cr.range.new_sha, steps)
    shutil.rmtree(tree)
    row = store.get(cr.campaign_id)
    assert row is not None
    out = write_report(row, steps, cr, tmp_path / "r")
    assert out["svg"].read_text().count('<g class="run">') == len(cr.posterior.runs)
