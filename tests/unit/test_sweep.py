"""The sweep's night-to-night logic, with scripted cells (the VM boundary faked).

Each test runs real :class:`Sweep` objects against a real SQLite store; only
``runner.run`` (booting a kernel) and kernel resolution are scripted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bisector import reproducer
from bisector.errors import InfraError
from bisector.runner import RunResult
from bisector.sweep.cells import CellRunner
from bisector.sweep.config import Plan
from bisector.sweep.maintenance import SweepLocked, sweep_lock
from bisector.sweep.model import (
    Category,
    CellStatus,
    KernelRef,
    Regression,
    RegressionStatus,
    SweepConfig,
    SweepReport,
)
from bisector.sweep.nightly import Sweep, run
from bisector.sweep.store import SweepStore
from bisector.verdict import Verdict

REPO = Path(__file__).resolve().parents[2]
GATE = REPO / "tests" / "data" / "reproducers" / "kernel-abi-gate.yaml"
LINE = "debian-6.1"

#: (kernel spec) → iteration verdicts of the next run, or an exception to raise
Script = dict[str, list[Any]]


class FakeResolver:
    def resolve(self, spec: str) -> object:
        return object()


def plan_for(tmp_path: Path, kernels: list[str], **cfg: Any) -> Plan:
    config = SweepConfig.model_validate({
        "kernels": {LINE: {"debian": {"series": "6.1"}}},
        "reproducers": [{"glob": str(GATE)}], **cfg})
    refs = [KernelRef(line=LINE, spec=s, label=s, order=i) for i, s in enumerate(kernels)]
    return Plan(name="night", config_path=tmp_path / "sweep.yaml", config=config,
                results_dir=tmp_path / "results", kernels=refs,
                reproducers={("kernel-abi-gate", "default"): reproducer.load(GATE)})


def scripted(script: Script, calls: list[str]) -> Callable[..., RunResult]:
    def run_fn(spec: str, repro: object, run_dir: Path, opts: object,
               artifact: object = None) -> RunResult:
        calls.append(spec)
        todo = script[spec]
        outcome = todo.pop(0) if len(todo) > 1 else todo[0]
        if isinstance(outcome, BaseException):
            raise outcome
        its = [{"verdict": v.value, "reason": f"run {v.value}"} for v in outcome]
        verdict = Verdict.BAD if all(v is Verdict.BAD for v in outcome) else (
            Verdict.GOOD if all(v is Verdict.GOOD for v in outcome) else Verdict.BAD)
        return RunResult(kernel=spec, reproducer="r", run_dir=str(run_dir), verdict=verdict,
                         reason=f"{verdict.value} by script", iterations=its,
                         phases={"boot": 1.0, "test": 2.0})
    return run_fn


class Night:
    """One sweep of the plan with a script; what bisect was asked."""

    def __init__(self, tmp_path: Path, store: SweepStore) -> None:
        self.tmp_path, self.store = tmp_path, store
        self.bisected: list[tuple[str, str]] = []
        self.calls: list[str] = []

    def bisect(self, plan: Plan, reg: Regression, rate: float | None,
               out: Path) -> Regression:
        self.bisected.append((reg.last_good, reg.first_bad))
        return reg.model_copy(update={"status": RegressionStatus.FOUND,
                                      "culprit": reg.first_bad})

    def sweep(self, kernels: list[str], script: Script, **cfg: Any) -> Sweep:
        plan = plan_for(self.tmp_path, kernels, **cfg)
        cells = CellRunner(plan.results_dir, None, attempts=3,  # type: ignore[arg-type]
                           run_fn=scripted(script, self.calls),
                           resolver_for=lambda k: FakeResolver(),  # type: ignore[arg-type,return-value]
                           retry_pause=0)
        return Sweep(plan, cells, self.store, bisect=self.bisect)

    def __call__(self, kernels: list[str], script: Script, **cfg: Any) -> SweepReport:
        return run(self.sweep(kernels, script, **cfg))


G, B = Verdict.GOOD, Verdict.BAD


@pytest.fixture
def night(tmp_path: Path, tmp_cache: Path) -> Night:
    return Night(tmp_path, SweepStore(tmp_path / "db.sqlite"))


def categories(r: SweepReport) -> list[Category]:
    return [c.category for c in r.changes]


def test_first_night_is_new_pass_or_new_failure(night: Night) -> None:
    r = night(["debian:6.1.0-56"], {"debian:6.1.0-56": [[B]]})
    assert categories(r) == [Category.NEW_FAILURE]
    assert night.bisected == []


def test_good_to_bad_on_the_line_is_a_new_regression_bisected_once(night: Night) -> None:
    night(["debian:6.1.0-55", "debian:6.1.0-56"], {"debian:6.1.0-55": [[G]],
                                                     "debian:6.1.0-56": [[G]]})
    r = night(["debian:6.1.0-56", "debian:6.1.0-57"], {"debian:6.1.0-56": [[G]],
                                                         "debian:6.1.0-57": [[B]]})
    assert Category.NEW_REGRESSION in categories(r)
    assert night.bisected == [("debian:6.1.0-56", "debian:6.1.0-57")]
    assert r.regressions[0].status is RegressionStatus.FOUND
    assert r.regressions[0].excerpt  # never empty


def test_still_failing_counts_nights_and_is_not_bisected_again(night: Night) -> None:
    k = ["debian:6.1.0-56", "debian:6.1.0-57"]
    night(k, {k[0]: [[G]], k[1]: [[G]]})
    first = night(k, {k[0]: [[G]], k[1]: [[B]]})
    r = night(k, {k[0]: [[G]], k[1]: [[B]]})
    (row,) = [c for c in r.changes if c.category is Category.STILL_FAILING]
    assert row.nights == 2 and row.since == first.started[:10]
    assert len(night.bisected) == 1


def test_bad_to_good_is_fixed_and_closes_the_regression(night: Night) -> None:
    k = ["debian:6.1.0-56", "debian:6.1.0-57"]
    night(k, {k[0]: [[G]], k[1]: [[G]]})
    night(k, {k[0]: [[G]], k[1]: [[B]]})
    r = night(k, {k[0]: [[G]], k[1]: [[G]]})
    assert categories(r)[0] is Category.FIXED
    assert night.store.open_regressions(f"night@{night.tmp_path / 'results'}") == []


def test_skip_is_newly_untestable_never_a_regression(night: Night) -> None:
    k = ["debian:6.1.0-57"]
    night(k, {k[0]: [[G]]})
    plan_skip = night.sweep(k, {k[0]: [[G]]})

    def skip(spec: str, *a: object, **kw: object) -> RunResult:
        return RunResult(kernel=spec, reproducer="r", run_dir="x", verdict=Verdict.SKIP,
                         reason="kernel crashed before the test")
    assert plan_skip.cells is not None
    plan_skip.cells.run_fn = skip
    r = run(plan_skip)
    assert categories(r) == [Category.NEWLY_UNTESTABLE]
    assert night.bisected == []


@pytest.mark.parametrize("failures, status", [
    (2, CellStatus.GOOD),    # retried: the third attempt gives the kernel's result
    (3, CellStatus.INFRA),   # every attempt failed: no result, never the kernel's
])
def test_infrastructure_failures_are_retried_three_times(night: Night, failures: int,
                                                         status: CellStatus) -> None:
    k = "debian:6.1.0-57"
    script: Script = {k: [InfraError("QEMU died")] * failures + [[G]]}
    r = night([k], script)
    (cell,) = r.cells
    assert cell.status is status and cell.attempts == 3
    assert night.calls == [k] * 3


def test_infra_after_good_is_no_regression(night: Night) -> None:
    k = ["debian:6.1.0-57"]
    night(k, {k[0]: [[G]]})
    r = night(k, {k[0]: [InfraError("ssh refused")]})
    assert categories(r) == [] and night.bisected == []


def test_a_killed_sweep_is_resumed_without_redoing_cells(night: Night) -> None:
    k = ["debian:6.1.0-56", "debian:6.1.0-57"]
    s1 = night.sweep(k, {k[0]: [[G]], k[1]: [KeyboardInterrupt()]})
    with pytest.raises(KeyboardInterrupt):
        run(s1)
    assert night.calls == k
    night.calls.clear()
    r = night(k, {k[0]: [[G]], k[1]: [[G]]})
    assert r.sweep_id == s1.sweep_id
    assert night.calls == [k[1]]  # the finished cell is not run again
    assert len(r.cells) == 2


def test_a_flaky_track_is_rerun_before_a_regression_is_called(night: Night) -> None:
    k = ["debian:6.1.0-57"]
    night(k, {k[0]: [[B, G]]})          # its repeats disagreed once: known flaky
    night(k, {k[0]: [[G]]})
    r = night(k, {k[0]: [[B], [G], [G]]})
    assert night.calls.count(k[0]) == 2 + 1 + 2  # tonight: once, then 2 re-runs
    assert Category.NEW_REGRESSION not in categories(r)
    assert categories(r) == [Category.UNSTABLE]


def test_a_deterministic_track_is_not_rerun(night: Night) -> None:
    k = ["debian:6.1.0-57"]
    night(k, {k[0]: [[G]]})
    night.calls.clear()
    night(k, {k[0]: [[B]]})
    assert night.calls == k


def test_appeared_and_disappeared_kernels(night: Night) -> None:
    night(["debian:6.1.0-55", "debian:6.1.0-56"], {"debian:6.1.0-55": [[G]],
                                                     "debian:6.1.0-56": [[G]]})
    r = night(["debian:6.1.0-56", "debian:6.1.0-57"], {"debian:6.1.0-56": [[G]],
                                                         "debian:6.1.0-57": [[G]]})
    cats = {(c.category, c.kernel) for c in r.changes}
    assert (Category.DISAPPEARED, "debian:6.1.0-55") in cats
    assert (Category.STILL_PASSING, "debian:6.1.0-57") in cats


def test_second_sweep_of_a_config_is_refused_while_one_runs(tmp_path: Path) -> None:
    with sweep_lock(tmp_path, "night"), pytest.raises(
            SweepLocked, match="another sweep of 'night' is running"), \
            sweep_lock(tmp_path, "night"):
        pass
    with sweep_lock(tmp_path, "night"):  # released: the next one runs
        pass


def test_a_sweep_killed_over_a_day_ago_is_marked_incomplete_not_compared(
        night: Night) -> None:
    k = ["debian:6.1.0-57"]
    night(k, {k[0]: [[G]]})
    s = night.sweep(k, {k[0]: [KeyboardInterrupt()]})
    with pytest.raises(KeyboardInterrupt):
        run(s)
    night.store.db.execute("UPDATE sweeps SET started = '2020-01-01T00:00:00' WHERE id = ?",
                           (s.sweep_id,))
    r = night(k, {k[0]: [[B]]})
    assert r.sweep_id != s.sweep_id
    assert night.store.sweep(s.sweep_id)["status"] == "incomplete"  # type: ignore[index]
    # compared with the last *finished* night (GOOD), never with the killed one
    assert categories(r) == [Category.NEW_REGRESSION]


def test_a_moved_branch_tip_is_not_appeared_and_disappeared(night: Night) -> None:
    night(["git:" + "a" * 40], {"git:" + "a" * 40: [[G]]})
    r = night(["git:" + "b" * 40], {"git:" + "b" * 40: [[G]]})
    assert categories(r) == [Category.STILL_PASSING]


def test_same_name_other_results_directory_is_another_history(night: Night) -> None:
    k = ["debian:6.1.0-57"]
    night(k, {k[0]: [[G]]})
    other = night.sweep(k, {k[0]: [[B]]})
    other.plan.results_dir = night.tmp_path / "elsewhere"
    assert categories(run(other)) == [Category.NEW_FAILURE]  # not a regression of the first
