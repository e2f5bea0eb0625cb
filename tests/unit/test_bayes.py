"""The Bayesian noisy bisection (bisector/search/bayes.py), driven by simulated runs.

Hand-computed posteriors pin the model; the driven cases pin the behaviours the
engine exists for: re-running when that is the cheaper information, calling a
flake a flake, costing no more than plain bisection on a deterministic bug, and
meaning what its confidence says.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from bisector.errors import UserError
from bisector.flaky import BayesOptions
from bisector.search.baselines import PlainPolicy, SyzbotPolicy
from bisector.search.bayes import (
    ActionKind,
    BayesSearch,
    Budget,
    Costs,
    Mark,
    NoiseModel,
    RateGrid,
    StopReason,
)
from bisector.verdict import Verdict

BAD, GOOD, SKIP = Verdict.BAD, Verdict.GOOD, Verdict.SKIP
#: a deterministic reproducer on a range known to hold a culprit: plain bisection's world
EXACT = NoiseModel(trigger=RateGrid.point(1.0), false_fail=RateGrid.point(0.0), flake_prior=0.0)


def run_on(eng: BayesSearch, candidate: int, verdict: Verdict) -> None:
    """Build and boot ``candidate`` if needed, as a caller would, then record one run."""
    if candidate not in eng._ledger.built:
        eng.mark_built(candidate)
    if eng.guest_up != candidate:
        eng.mark_booted(candidate)
    eng.record(candidate, verdict)


def drive(eng: BayesSearch, outcome: Callable[[int], Verdict], max_steps: int = 5000) -> int:
    """Follow the engine's actions until it stops; returns the number of runs."""
    for _ in range(max_steps):
        action = eng.next_action()
        if action is None:
            return eng.result().runs
        run_on(eng, action.candidate, outcome(action.candidate))
    raise AssertionError("the engine did not stop")


class Outcome:
    """A simulated reproducer: fails with ``p`` at/after ``culprit`` and ``eps`` before it."""

    def __init__(self, culprit: int | None, p: float = 1.0, eps: float = 0.0,
                 seed: int = 0) -> None:
        self.culprit, self.p, self.eps = culprit, p, eps
        self.rng = random.Random(seed)

    def __call__(self, c: int) -> Verdict:
        bad = self.culprit is not None and c >= self.culprit
        return BAD if self.rng.random() < (self.p if bad else self.eps) else GOOD


# ---------------------------------------------------------------- the posterior

def test_posterior_update_matches_a_hand_computation() -> None:
    # prior: culprit 0 = 0.4, culprit 1 = 0.4, flake = 0.2; p = 0.5, eps = 0.1
    eng = BayesSearch(2, model=NoiseModel(trigger=RateGrid.point(0.5),
                                          false_fail=RateGrid.point(0.1), flake_prior=0.2))
    eng.record(0, BAD)  # likelihoods 0.5 / 0.1 / 0.1
    eng.record(1, GOOD)  # then 0.5 / 0.5 / 0.9
    joint = [0.4 * 0.5 * 0.5, 0.4 * 0.1 * 0.5, 0.2 * 0.1 * 0.9]
    got = [eng.probability(0), eng.probability(1), eng.probability(None)]
    assert got == pytest.approx([x / sum(joint) for x in joint])


def test_the_trigger_rate_is_marginalised_over_all_runs_jointly() -> None:
    # p is 0.5 or 1 (even odds), eps = 0, no flake.  Culprit 0 must explain a pass and a
    # failure on bad kernels with one p: 0.5 * 0.5 * 0.5 + 0.5 * 1 * 0 = 0.125;
    # culprit 1 a failure only: 0.5 * 0.5 + 0.5 * 1 = 0.75.  (Per-run averaging would
    # give culprit 0 a wrong 0.75 * 0.25.)
    model = NoiseModel(trigger=RateGrid((0.5, 1.0), (1.0, 1.0)),
                       false_fail=RateGrid.point(0.0), flake_prior=0.0)
    eng = BayesSearch(2, model=model)
    eng.record(0, GOOD)
    eng.record(1, BAD)
    assert eng.probability(0) == pytest.approx(0.125 / 0.875)


def test_probabilities_sum_to_one_with_the_flake() -> None:
    eng = BayesSearch(50)
    for c, v in [(10, GOOD), (30, BAD), (30, GOOD), (20, BAD), (45, GOOD)]:
        eng.record(c, v)
    total = sum(eng.probability(i) for i in range(50)) + eng.probability(None)
    assert total == pytest.approx(1.0)


def test_a_skipped_run_costs_time_but_changes_nothing() -> None:
    eng = BayesSearch(16)
    eng.record(7, BAD)
    before = [eng.probability(i) for i in range(16)]
    eng.record(7, SKIP)
    assert [eng.probability(i) for i in range(16)] == before
    r = eng.result()
    assert (r.runs, r.skips, r.seconds) == (2, 1, 20.0)


def test_a_line_given_as_a_dag_has_the_same_posterior() -> None:
    line = BayesSearch(20)
    dag = BayesSearch(20, ancestors=lambda c: frozenset(range(c + 1)))
    for c, v in [(9, GOOD), (14, BAD), (14, GOOD), (11, BAD), (12, GOOD)]:
        line.record(c, v)
        dag.record(c, v)
    for i in [*range(20), None]:
        assert dag.probability(i) == pytest.approx(line.probability(i))


def test_a_given_prior_weights_the_hypotheses() -> None:
    weights = [1.0] * 10
    weights[3] = 5.0
    eng = BayesSearch(10, prior=weights, model=NoiseModel(flake_prior=0.0))
    assert eng.probability(3) == pytest.approx(5 * eng.probability(4))
    assert eng.top(1)[0].candidate == 3


def test_a_candidate_without_prior_weight_is_never_the_answer() -> None:
    weights = [1.0] * 8
    weights[3] = 0.0
    eng = BayesSearch(8, prior=weights)
    for c, v in [(2, GOOD), (2, GOOD), (3, BAD), (3, BAD)]:  # pointing at 3
        eng.record(c, v)
    assert eng.probability(3) == 0.0
    assert eng.result().culprit != 3


def test_mass_by_range_sums_the_posterior_over_each_stretch() -> None:
    eng = BayesSearch(20)
    for c, v in [(9, GOOD), (14, BAD), (14, GOOD), (11, BAD)]:
        eng.record(c, v)
    got = eng.mass_by_range([0, 5, 12])
    want = [sum(eng.probability(i) for i in r) for r in (range(5), range(5, 12), range(12, 20))]
    assert got == pytest.approx(want)


def test_mass_by_range_is_the_same_on_a_dag() -> None:
    line = BayesSearch(20)
    dag = BayesSearch(20, ancestors=lambda c: frozenset(range(c + 1)))
    for c, v in [(9, GOOD), (14, BAD), (11, BAD)]:
        line.record(c, v)
        dag.record(c, v)
    assert dag.mass_by_range([0, 7, 10, 15]) == pytest.approx(line.mass_by_range([0, 7, 10, 15]))


def test_mass_by_range_needs_stretches_that_start_at_zero_and_increase() -> None:
    with pytest.raises(UserError, match="start at 0"):
        BayesSearch(8).mass_by_range([0, 4, 4])


def test_the_flake_hypothesis_is_there_even_when_unlikely() -> None:
    eng = BayesSearch(8, model=EXACT)
    run_on(eng, 3, BAD)
    assert eng.flake().is_flake and eng.flake().probability == 0.0


# ---------------------------------------------------------------- the stop rule

def test_stops_once_the_top_hypothesis_reaches_the_target() -> None:
    eng = BayesSearch(8, model=EXACT)
    for c, v in [(3, BAD), (1, GOOD), (2, GOOD)]:
        assert eng.next_action() is not None
        run_on(eng, c, v)
    assert eng.next_action() is None
    r = eng.result()
    assert (r.stopped, r.culprit, r.confidence) == (StopReason.CONFIDENT, 3, 1.0)


def test_does_not_stop_below_the_target() -> None:
    eng = BayesSearch(8, target=0.99)
    run_on(eng, 3, BAD)
    assert eng.next_action() is not None
    assert eng.result().stopped is None


def test_stops_when_the_run_budget_is_spent() -> None:
    eng = BayesSearch(64, budget=Budget(max_runs=3))
    drive(eng, Outcome(20, p=0.3))
    r = eng.result()
    assert (r.stopped, r.runs) == (StopReason.RUNS, 3)


def test_stops_when_the_next_step_needs_a_build_beyond_the_budget() -> None:
    eng = BayesSearch(64, model=EXACT, budget=Budget(max_builds=2))
    drive(eng, Outcome(20))
    r = eng.result()
    assert (r.stopped, r.builds) == (StopReason.BUILDS, 2)


def test_stops_when_the_next_step_would_overrun_the_time_budget() -> None:
    eng = BayesSearch(64, budget=Budget(max_seconds=620.0))
    drive(eng, Outcome(20, p=0.5))
    r = eng.result()
    assert (r.stopped, r.seconds) == (StopReason.SECONDS, 615.0)


def test_runs_impossible_under_a_declared_model_stop_it_as_inconsistent() -> None:
    eng = BayesSearch(8, model=EXACT)
    eng.record(3, BAD)
    eng.record(3, GOOD)  # p = 1 and eps = 0 allow no kernel to do both
    assert eng.next_action() is None
    r = eng.result()
    assert r.stopped is StopReason.INCONSISTENT
    assert r.confidence == pytest.approx(0.25)  # the posterior before: culprit 0..3


def test_a_declared_false_alarm_rate_of_zero_makes_a_good_kernel_failure_impossible() -> None:
    # p unknown (the default grid), eps declared 0: one failure on 5 proves 5 bad
    declared = BayesSearch(16, model=NoiseModel(false_fail=RateGrid.point(0.0)))
    unknown = BayesSearch(16)
    for eng in (declared, unknown):
        eng.record(5, BAD)
    # a culprit after 5, or "flake", needs 5 to be good and to have failed anyway
    assert all(declared.probability(c) == 0.0 for c in range(6, 16))
    assert declared.probability(None) == 0.0
    assert sum(declared.probability(c) for c in range(6)) == pytest.approx(1.0)
    # unknown eps: a false alarm stays possible, so those hypotheses keep some mass
    assert all(unknown.probability(c) > 0.0 for c in range(6, 16))
    assert unknown.probability(None) > 0.0


def test_a_declared_false_alarm_rate_of_zero_settles_a_failing_kernel_with_one_run() -> None:
    eng = BayesSearch(2, model=NoiseModel(false_fail=RateGrid.point(0.0), flake_prior=0.0))
    eng.record(0, BAD)  # the first candidate failed: it is bad, hence the culprit
    assert eng.probability(0) == pytest.approx(1.0)
    assert eng.next_action() is None and eng.result().stopped is StopReason.CONFIDENT


def test_bayes_options_declare_the_rates_as_grid_points() -> None:
    assert BayesOptions().noise_model() == NoiseModel()
    model = BayesOptions(trigger_rate=0.3, false_alarm_rate=0.0).noise_model()
    assert model.trigger == RateGrid.point(0.3) and model.false_fail == RateGrid.point(0.0)
    only_eps = BayesOptions(false_alarm_rate=0.01).noise_model()
    assert only_eps.trigger == NoiseModel().trigger  # p still marginalised
    assert only_eps.false_fail == RateGrid.point(0.01)


# ---------------------------------------------------------------- action choice

def test_reruns_the_up_guest_when_another_run_is_worth_more_than_a_build() -> None:
    eng = BayesSearch(64)
    run_on(eng, 31, GOOD)  # a pass: bad with a low trigger rate is still quite possible
    action = eng.next_action()
    assert action is not None
    assert (action.kind, action.candidate) == (ActionKind.RUN, 31)


def test_builds_when_the_up_guest_has_nothing_left_to_say() -> None:
    eng = BayesSearch(64, model=EXACT)
    run_on(eng, 31, GOOD)  # p = 1: one pass settles it
    action = eng.next_action()
    assert action is not None
    assert action.kind is ActionKind.BUILD and action.candidate > 31


def test_builds_instead_of_rerunning_when_runs_are_dear() -> None:
    eng = BayesSearch(64, costs=Costs(build_s=600.0, boot_s=5.0, run_s=5000.0))
    run_on(eng, 31, GOOD)
    action = eng.next_action()
    assert action is not None and action.kind is ActionKind.BUILD


@pytest.mark.parametrize(("build_s", "kind"), [(600.0, ActionKind.RUN),
                                                (5.0, ActionKind.BUILD)])
def test_the_costs_it_is_told_decide_between_a_rerun_and_a_build(build_s: float,
                                                                 kind: ActionKind) -> None:
    eng = BayesSearch(64)
    for _ in range(3):
        run_on(eng, 31, GOOD)
    eng.use_costs(Costs(build_s=build_s, boot_s=5.0, run_s=10.0))
    action = eng.next_action()
    assert action is not None and action.kind is kind


@pytest.mark.parametrize(("step_s", "kind"), [(None, ActionKind.RUN), (1.0, ActionKind.BUILD)])
def test_a_kernel_is_left_once_its_runs_fall_well_behind_the_pace_so_far(
        step_s: float | None, kind: ActionKind) -> None:
    # 11 passes on 31: at the told costs (build 600 s, run 10 s) one more run still beats
    # the next build's plan; if those steps took 1 s each, the bisection learned so fast
    # that a run yielding so little is not worth staying for (the marginal value theorem)
    eng = BayesSearch(64)
    eng.mark_built(31, step_s)
    eng.mark_booted(31, step_s)
    for _ in range(11):
        eng.record(31, GOOD, step_s)
    action = eng.next_action()
    assert action is not None and action.kind is kind


def test_boots_a_built_kernel_rather_than_building_again() -> None:
    # eps = 0: the failure settles 20; p = 0.5: one pass leaves 10 open
    eng = BayesSearch(64, model=NoiseModel(trigger=RateGrid.point(0.5),
                                           false_fail=RateGrid.point(0.0), flake_prior=0.0))
    run_on(eng, 10, GOOD)
    run_on(eng, 20, BAD)  # the guest is now 20, which has nothing left to say
    action = eng.next_action()
    assert action is not None
    assert (action.kind, action.candidate) == (ActionKind.BOOT, 10)


def test_an_untestable_candidate_is_never_proposed_again() -> None:
    eng = BayesSearch(64, model=EXACT)
    first = eng.next_action()
    assert first is not None
    eng.mark_untestable(first.candidate)
    again = eng.next_action()
    assert again is not None and again.candidate != first.candidate


# ---------------------------------------------------------------- behaviours end to end

def test_failures_on_one_kernel_then_only_passes_is_a_flake() -> None:
    eng = BayesSearch(64)
    run_on(eng, 63, BAD)
    drive(eng, lambda c: GOOD)
    r = eng.result()
    assert r.stopped is StopReason.CONFIDENT and r.answer.is_flake


@pytest.mark.parametrize("culprit", range(64))
def test_a_deterministic_bug_costs_what_plain_bisection_costs(culprit: int) -> None:
    eng = BayesSearch(64, model=EXACT)
    runs = drive(eng, Outcome(culprit))
    r = eng.result()
    assert (r.culprit, runs, r.builds) == (culprit, 6, 6)  # ceil(log2 64)


def test_reported_confidence_is_calibrated() -> None:
    right = reported = 0
    for seed in range(300):
        rng = random.Random(seed)
        culprit = rng.randrange(64)
        eng = BayesSearch(64, target=0.95)
        drive(eng, Outcome(culprit, p=0.5, eps=0.01, seed=seed))
        r = eng.result()
        if r.confidence >= 0.95:
            reported += 1
            right += r.culprit == culprit
    assert reported >= 290
    assert right / reported >= 0.9


# ---------------------------------------------------------------- the git bisect export

def test_answer_marks_a_culprit_bad_and_its_parent_good() -> None:
    eng = BayesSearch(8, model=EXACT)
    for c, v in [(3, BAD), (1, GOOD), (2, GOOD)]:
        eng.record(c, v)
    assert eng.answer_marks() == [Mark(2, "good"), Mark(3, "bad")]


def test_answer_marks_a_flake_as_the_new_end_good() -> None:
    eng = BayesSearch(8, model=NoiseModel(flake_prior=0.5))
    for _ in range(40):
        eng.record(7, GOOD)
    assert eng.answer_marks() == [Mark(7, "good")]


def test_a_merge_culprit_is_marked_with_both_parents_good() -> None:
    # 0 -> 1, 0 -> 2, merge 3 of 1 and 2, then 4
    anc = {0: {0}, 1: {0, 1}, 2: {0, 2}, 3: {0, 1, 2, 3}, 4: {0, 1, 2, 3, 4}}
    eng = BayesSearch(5, model=EXACT, ancestors=lambda c: frozenset(anc[c]))
    drive(eng, lambda c: BAD if 3 in anc[c] else GOOD)
    assert eng.result().culprit == 3
    assert eng.answer_marks() == [Mark(1, "good"), Mark(2, "good"), Mark(3, "bad")]


def test_a_dag_culprit_on_a_side_branch_is_found() -> None:
    anc = {0: {0}, 1: {0, 1}, 2: {0, 2}, 3: {0, 1, 2, 3}, 4: {0, 1, 2, 3, 4}}
    eng = BayesSearch(5, model=EXACT, ancestors=lambda c: frozenset(anc[c]))
    drive(eng, lambda c: BAD if 2 in anc[c] else GOOD)
    assert eng.result().culprit == 2
    assert eng.answer_marks() == [Mark(0, "good"), Mark(2, "bad")]


# ---------------------------------------------------------------- input checks

def test_a_candidate_outside_the_range_is_a_user_error() -> None:
    with pytest.raises(UserError, match="outside"):
        BayesSearch(8).record(8, BAD)


def test_a_grid_rate_outside_zero_one_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        RateGrid((1.5,), (1.0,))


# ---------------------------------------------------------------- the benchmark's baselines

def test_syzbot_needs_two_crashes_in_ten_runs_for_bad() -> None:
    pol = SyzbotPolicy(16)
    for _ in range(20):  # the first test: 20 runs of the crash commit
        pol.record(15, BAD)
    c = pol.next_candidate()
    assert c is not None
    for v in [BAD, *[GOOD] * 9]:  # one crash in ten: no verdict (skip)
        pol.record(c, v)
    assert pol._range.skipped == [c]


def test_plain_bisection_says_no_culprit_when_the_new_end_passes() -> None:
    pol = PlainPolicy(16)
    assert pol.next_candidate() == 15
    pol.record(15, GOOD)
    assert pol.next_candidate() is None
    assert pol.answer().flake and math.isclose(pol.answer().confidence, 1.0)


# ---------------------------------------------------------------- hunting a fix

class FixOutcome:
    """A flaky bug fixed at ``fix``: kernels before it fail with ``p``, later ones with eps."""

    def __init__(self, fix: int | None, p: float, eps: float = 0.0, seed: int = 0) -> None:
        self.fix, self.p, self.eps = fix, p, eps
        self.rng = random.Random(seed)

    def __call__(self, c: int) -> Verdict:
        broken = self.fix is None or c < self.fix
        return BAD if self.rng.random() < (self.p if broken else self.eps) else GOOD


def test_a_fix_hunt_puts_the_trigger_rate_on_the_old_side() -> None:
    # one failure on 2 and one pass on 5, p = 0.5 and eps = 0 declared: the fix is in 3..5,
    # each of the three explains "5 passed" with the same (1 - eps) = 1 -- equally likely
    model = NoiseModel(trigger=RateGrid.point(0.5), false_fail=RateGrid.point(0.0),
                       flake_prior=0.0)
    eng = BayesSearch(8, model=model, find_fix=True)
    eng.record(2, BAD)
    eng.record(5, GOOD)
    assert [eng.probability(c) for c in range(3)] == [0.0, 0.0, 0.0]  # 2 failed: still broken
    # before 3: 5 is still broken and passed (x 0.5); 3..5: fixed at 5 (x 1)
    assert eng.probability(3) == pytest.approx(eng.probability(4))
    assert eng.probability(3) / eng.probability(6) == pytest.approx(2.0)


def test_a_fix_hunt_takes_a_failure_as_proof_of_still_broken() -> None:
    # a regression hunt would take the same failure as proof of *bad*: the sides are turned
    model = NoiseModel(false_fail=RateGrid.point(0.0))
    eng = BayesSearch(16, model=model, find_fix=True)
    eng.record(10, BAD)
    assert sum(eng.probability(c) for c in range(11)) == 0.0
    assert eng.probability(None) > 0.0  # "no fix in the range" stays possible


def test_a_fix_hunts_flake_is_no_fix_when_the_new_end_fails_too() -> None:
    eng = BayesSearch(64, find_fix=True)
    drive(eng, FixOutcome(None, p=0.5, seed=3))
    r = eng.result()
    assert r.stopped is StopReason.CONFIDENT and r.answer.is_flake


@pytest.mark.parametrize("fix", [1, 17, 40, 63])
def test_a_fix_hunt_finds_the_first_fixed_commit_of_a_flaky_bug(fix: int) -> None:
    eng = BayesSearch(64, find_fix=True, target=0.99)
    drive(eng, FixOutcome(fix, p=0.5, seed=fix))
    r = eng.result()
    assert (r.stopped, r.culprit) == (StopReason.CONFIDENT, fix)
    assert r.answer.rate == pytest.approx(0.5, abs=0.2)  # the trigger rate, of the old side
    assert eng.answer_marks() == [Mark(fix - 1, "good"), Mark(fix, "bad")]


def test_a_deterministic_fix_costs_what_plain_bisection_costs() -> None:
    for fix in range(64):
        eng = BayesSearch(64, model=EXACT, find_fix=True)
        runs = drive(eng, FixOutcome(fix, p=1.0))
        assert (eng.result().culprit, runs) == (fix, 6)
