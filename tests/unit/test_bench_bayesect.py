"""bench/bayesect.py, the port of git_bayesect's search that bench-flaky compares us with."""

from __future__ import annotations

import random
from types import ModuleType

import pytest

from bisector.verdict import Verdict
from tests.fakes.bench import load_bench


@pytest.fixture(scope="module")
def bayesect() -> ModuleType:
    return load_bench("bayesect")


def drive(policy: object, culprit: int, p: float, seed: int) -> tuple[int, int]:
    """Run the policy on a line whose kernels from ``culprit`` on fail with ``p``."""
    rng, runs = random.Random(seed), 0
    while (c := policy.next_candidate()) is not None:  # type: ignore[attr-defined]
        assert runs < 10_000, "the policy did not stop"
        fails = c >= culprit and rng.random() < p
        policy.record(c, Verdict.BAD if fails else Verdict.GOOD)  # type: ignore[attr-defined]
        runs += 1
    return policy.answer().culprit, runs  # type: ignore[attr-defined]


@pytest.mark.parametrize(("culprit", "p"), [(0, 1.0), (17, 1.0), (63, 1.0), (40, 0.5)])
def test_it_names_the_culprit_in_the_orientation_of_the_bench(
        bayesect: ModuleType, culprit: int, p: float) -> None:
    answer, _ = drive(bayesect.BayesectPolicy(64, 0.99, 5000), culprit, p, seed=culprit)
    assert answer == culprit


def test_a_deterministic_bug_costs_it_a_few_runs_beyond_log2_n(bayesect: ModuleType) -> None:
    # both rates unknown: a handful of extra runs buys the confidence that p is high
    runs = [drive(bayesect.BayesectPolicy(64, 0.95, 5000), c, 1.0, seed=c)[1]
            for c in range(0, 64, 7)]
    assert 6 <= sum(runs) / len(runs) <= 20


def test_the_run_budget_stops_it_where_no_culprit_can_be_told(bayesect: ModuleType) -> None:
    _, runs = drive(bayesect.BayesectPolicy(64, 0.99, 50), 10**6, 0.0, seed=1)
    assert runs == 50
