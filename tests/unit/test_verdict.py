from __future__ import annotations

import pytest

from bisector.reproducer import Rule, VerdictRules
from bisector.verdict import (
    Iteration,
    Outcome,
    StepResult,
    Verdict,
    can_stop_early,
    combine,
    find_crash,
    judge_iteration,
)

RULES = VerdictRules(good=Rule(exit_status=[0], output="unchanged"),
                     bad=Rule(exit_status=[1], output="altered"))


def it(*steps: StepResult, log: str = "", lost: bool = False) -> Iteration:
    return Iteration(steps=list(steps), kernel_log=log, guest_lost=lost)


def step(phase: str, rc: int | None, out: str = "", timed_out: bool = False) -> StepResult:
    return StepResult(name=f"{phase}-step", phase=phase, command="x", exit_status=rc,
                      stdout=out, timed_out=timed_out)


def test_good_needs_the_evidence_not_just_exit_0() -> None:
    assert judge_iteration(it(step("run", 0, "RESULT: unchanged")), RULES).verdict is Verdict.GOOD
    d = judge_iteration(it(step("run", 0, "nothing captured")), RULES)
    assert d.verdict is Verdict.SKIP and "neither rule" in d.reason


def test_bad() -> None:
    d = judge_iteration(it(step("run", 1, "RESULT: altered")), RULES)
    assert d.verdict is Verdict.BAD and "exit status 1" in d.reason


def test_setup_failure_is_skip() -> None:
    d = judge_iteration(it(step("setup", 2), step("run", 1, "altered")), RULES)
    assert d.verdict is Verdict.SKIP and "setup" in d.reason


def test_unrelated_crash_is_skip_declared_signature_is_bad() -> None:
    oops = "[ 1.0] BUG: kernel NULL pointer dereference, address: 0\n[ 1.0] Oops: 0002"
    d = judge_iteration(it(step("run", 0, "unchanged"), log=oops), RULES)
    assert d.verdict is Verdict.SKIP and "unrelated crash" in d.reason
    rules = VerdictRules(good=Rule(exit_status=[0]),
                         bad=Rule(console=r"NULL pointer dereference"))
    d = judge_iteration(it(step("run", None), log=oops, lost=True), rules)
    assert d.verdict is Verdict.BAD


def test_console_only_signature_without_crash() -> None:
    rules = VerdictRules(good=Rule(exit_status=[0]), bad=Rule(console=r"martian source"))
    d = judge_iteration(it(step("run", 0), log="IPv4: martian source 10.0.0.1 from"), rules)
    assert d.verdict is Verdict.BAD
    assert judge_iteration(it(step("run", 0), log="quiet"), rules).verdict is Verdict.GOOD


def test_guest_lost_without_signature_is_skip() -> None:
    d = judge_iteration(it(step("run", None), lost=True), RULES)
    assert d.verdict is Verdict.SKIP


def test_timeout_skip_unless_declared() -> None:
    hung = it(step("run", None, timed_out=True))
    assert judge_iteration(hung, RULES).verdict is Verdict.SKIP
    rules = RULES.model_copy(update={"on_timeout": "bad"})
    assert judge_iteration(hung, rules).verdict is Verdict.BAD


def test_thresholds_and_can_stop_early() -> None:
    rules = RULES.model_copy(update={"repeat": 5, "bad_threshold": 2, "good_threshold": 4})
    g, b, s = (Outcome(Verdict.GOOD, "g"), Outcome(Verdict.BAD, "b"),
               Outcome(Verdict.SKIP, "s"))
    assert combine([g, b, g, g, g], rules).verdict is Verdict.GOOD
    assert combine([g, b, b], rules).verdict is Verdict.BAD
    assert combine([g, s, s, b, g], rules).verdict is Verdict.SKIP
    assert can_stop_early([b, b], rules)
    assert not can_stop_early([g, g, g], rules)
    assert not can_stop_early([s, s, b], rules)  # a second bad is still possible
    assert can_stop_early([s, s, s, s], rules)  # neither threshold reachable any more
    out = combine([g, b, g, g, g], rules)
    assert out.counts == {"good": 4, "bad": 1, "skip": 0}


def test_find_crash() -> None:
    assert find_crash("ok\n[ 2.1] Kernel panic - not syncing: VFS") is not None
    assert find_crash("[ 1] WARNING: CPU: 0 PID: 1 at net/core/dev.c:1 x") is not None
    assert find_crash("ip_tunnel: non-ECT from 10.254.3.1 with TOS=0x1") is None
    assert Verdict.SKIP.exit_code == 125 and Verdict.BAD.exit_code == 1


def test_rule_fields_are_read_from_the_rule_type() -> None:
    """A new criterion added to Rule without a matcher must not be silently ignored."""

    class Extended(Rule):
        uptime_below: int | None = None

    rules = VerdictRules(good=Rule(exit_status=[0]),
                         bad=Extended(exit_status=[1], uptime_below=5))
    it = Iteration(steps=[StepResult("t", "run", "x", 1)])
    with pytest.raises(NotImplementedError, match="uptime_below"):
        judge_iteration(it, rules)


def test_console_only_rule_is_known_from_its_fields() -> None:
    rules = VerdictRules(good=Rule(exit_status=[0]), bad=Rule(console="BUG: the bug"))
    it = Iteration(steps=[StepResult("t", "run", "x", 0)], kernel_log="BUG: the bug\n")
    assert judge_iteration(it, rules).verdict is Verdict.BAD
