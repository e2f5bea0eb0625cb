"""Verdicts: a pure function from run results and reproducer rules.

GOOD / BAD / SKIP only.  SKIP means "this kernel cannot be tested" (setup
failed, boot failed, an *unrelated* crash, a hang the reproducer does not
declare as the bug).  Infrastructure failures never reach this module: they
are exceptions (:mod:`bisector.errors`), so they can never turn into BAD.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .reproducer import Rule, VerdictRules


class Verdict(enum.Enum):
    GOOD = "good"
    BAD = "bad"
    SKIP = "skip"

    @property
    def exit_code(self) -> int:
        """``git bisect run`` convention."""
        return {Verdict.GOOD: 0, Verdict.BAD: 1, Verdict.SKIP: 125}[self]


#: console lines that mean the kernel crashed or is in trouble
CRASH_PATTERNS: tuple[str, ...] = (
    r"Kernel panic - not syncing",
    r"BUG: (?!.*\bsoft lockup\b)",
    r"kernel BUG at",
    r"Oops: ",
    r"general protection fault",
    r"Unable to handle kernel",
    r"BUG: soft lockup",
    r"rcu: INFO: rcu_(pre)?sched detected stalls",
    r"INFO: task .* blocked for more than",
    r"UBSAN: ",
    r"KASAN: ",
    r"WARNING: CPU: \d+ PID: \d+ at ",
)
_CRASH_RE = re.compile("|".join(f"(?:{p})" for p in CRASH_PATTERNS))


def find_crash(text: str) -> str | None:
    """The first crash line in a kernel log, or None."""
    for line in text.splitlines():
        if _CRASH_RE.search(line):
            return line.strip()
    return None


@dataclass
class StepResult:
    name: str
    phase: str  # setup | run | cleanup
    command: str
    exit_status: int | None  # None: timed out or the guest went away
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timed_out: bool = False


@dataclass
class Iteration:
    """One pass of setup → run → cleanup in the guest."""

    steps: list[StepResult] = field(default_factory=list)
    #: kernel log produced during this iteration (dmesg, or console if the guest died)
    kernel_log: str = ""
    #: the guest stopped answering (crash/reboot) during this iteration
    guest_lost: bool = False

    def phase(self, name: str) -> list[StepResult]:
        return [s for s in self.steps if s.phase == name]


@dataclass(frozen=True)
class Outcome:
    """A verdict and why: of one iteration (``iterations`` empty), or of all the
    iterations of one boot combined by :func:`combine` (``iterations`` holds them)."""

    verdict: Verdict
    reason: str
    iterations: tuple[Outcome, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        c = {v.value: 0 for v in Verdict}
        for d in self.iterations:
            c[d.verdict.value] += 1
        return c


Matcher = Callable[[Any, StepResult | None, str], str | None]


def _match_exit(want: list[int], test: StepResult | None, kernel_log: str) -> str | None:
    if test is None or test.exit_status not in want:
        return None
    return f"exit status {test.exit_status}"


def _match_output(pattern: str, test: StepResult | None, kernel_log: str) -> str | None:
    m = re.search(pattern, test.stdout if test else "", re.MULTILINE)
    return f"output matched {m.group(0).strip()[:120]!r}" if m else None


def _match_console(pattern: str, test: StepResult | None, kernel_log: str) -> str | None:
    m = re.search(pattern, kernel_log, re.MULTILINE)
    return f"kernel log matched {m.group(0).strip()[:120]!r}" if m else None


#: one matcher per field of :class:`Rule`; a field without one is a bug that
#: :func:`criteria` reports instead of silently ignoring the user's criterion
MATCHERS: dict[str, Matcher] = {"exit_status": _match_exit, "output": _match_output,
                                "console": _match_console}


def criteria(rule: Rule) -> dict[str, Any]:
    """The criteria a rule sets (field name → value), read from the rule's own type."""
    out = {name: getattr(rule, name) for name in type(rule).model_fields
           if getattr(rule, name) is not None}
    unknown = set(out) - set(MATCHERS)
    if unknown:
        raise NotImplementedError(f"verdict rule field(s) {', '.join(sorted(unknown))} "
                                  "have no matcher in bisector.verdict.MATCHERS")
    return out


def _rule_holds(rule: Rule, test: StepResult | None, kernel_log: str) -> tuple[bool, str]:
    """All criteria hold (and why), in the order the rule's fields are declared."""
    why = []
    for name, value in criteria(rule).items():
        held = MATCHERS[name](value, test, kernel_log)
        if held is None:
            return False, ""
        why.append(held)
    return True, ", ".join(why)


def judge_iteration(it: Iteration, rules: VerdictRules) -> Outcome:
    """The verdict of one iteration; see the reproducer docs for the order."""
    for step in it.phase("setup"):
        if step.timed_out:
            return Outcome(Verdict.SKIP, f"setup step '{step.name}' timed out")
        if step.exit_status != 0:
            return Outcome(Verdict.SKIP, f"setup step '{step.name}' failed "
                                          f"(exit {step.exit_status}): "
                                          f"{_last_line(step.stderr or step.stdout)}")
    run = it.phase("run")
    for step in run[:-1]:
        if step.timed_out and rules.on_timeout != "bad":
            return Outcome(Verdict.SKIP, f"run step '{step.name}' timed out")
        if step.exit_status != 0 and not step.timed_out:
            return Outcome(Verdict.SKIP, f"run step '{step.name}' failed "
                                          f"(exit {step.exit_status})")
    test = run[-1] if run else None
    signature = None
    if rules.bad.console is not None:
        m = re.search(rules.bad.console, it.kernel_log, re.MULTILINE)
        signature = m.group(0).strip()[:120] if m else None
    crash = find_crash(it.kernel_log)
    # The declared kernel-log signature *is* the bug: it wins over a crash, a lost
    # guest or a hung step, and alone suffices when the rule names nothing else.
    only_console = set(criteria(rules.bad)) == {"console"}
    if signature is not None and (only_console or crash is not None or it.guest_lost):
        return Outcome(Verdict.BAD, f"kernel log matched {signature!r}")
    if crash is not None:
        return Outcome(Verdict.SKIP, f"unrelated crash: {crash[:200]}")
    if it.guest_lost:
        return Outcome(Verdict.SKIP, "guest stopped answering without a crash signature")
    if test is None:
        return Outcome(Verdict.SKIP, "no test step ran")
    if test.timed_out:
        if rules.on_timeout == "bad":
            return Outcome(Verdict.BAD, f"test step '{test.name}' hung (declared as the bug)")
        return Outcome(Verdict.SKIP, f"test step '{test.name}' timed out")
    ok, why = _rule_holds(rules.bad, test, it.kernel_log)
    if ok:
        return Outcome(Verdict.BAD, why)
    ok, why = _rule_holds(rules.good, test, it.kernel_log)
    if ok:
        return Outcome(Verdict.GOOD, why)
    return Outcome(Verdict.SKIP, f"result matched neither rule (exit {test.exit_status}: "
                                  f"{_last_line(test.stdout or test.stderr)})")


def combine(decisions: list[Outcome], rules: VerdictRules) -> Outcome:
    """Combine per-iteration outcomes using repeat / thresholds."""
    bad = [d for d in decisions if d.verdict is Verdict.BAD]
    good = [d for d in decisions if d.verdict is Verdict.GOOD]
    skip = [d for d in decisions if d.verdict is Verdict.SKIP]
    n = len(decisions)
    tail = f"{len(bad)} bad, {len(good)} good, {len(skip)} skip of {n}"
    if len(bad) >= rules.bad_threshold:
        return Outcome(Verdict.BAD, f"{bad[0].reason} [{tail}]", tuple(decisions))
    if len(good) >= rules.good_needed:
        return Outcome(Verdict.GOOD, f"{good[0].reason} [{tail}]", tuple(decisions))
    first = (skip or decisions)[0].reason if decisions else "no iteration ran"
    return Outcome(Verdict.SKIP, f"{first} [{tail}]", tuple(decisions))


def can_stop_early(decisions: list[Outcome], rules: VerdictRules) -> bool:
    """True when further repeats cannot change the outcome (saves boots' worth of time)."""
    bad = sum(d.verdict is Verdict.BAD for d in decisions)
    good = sum(d.verdict is Verdict.GOOD for d in decisions)
    left = rules.repeat - len(decisions)
    if bad >= rules.bad_threshold:
        return True
    if bad + left < rules.bad_threshold and good >= rules.good_needed:
        return True
    return bad + left < rules.bad_threshold and good + left < rules.good_needed


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"
