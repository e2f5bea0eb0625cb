"""What a campaign's answer means, in the lines a kernel engineer pastes into a mail.

One place for the wording, used by the terminal summary and by the reports:

* a regression culprit gets ``Fixes: <12 hex> ("subject")`` (the line the fix
  will carry) and ``#regzbot introduced: <sha>`` (what regzbot reads);
* a fix gets "fixed by" and the line a stable backport request uses — never a
  ``Fixes:`` line (that names the commit that *introduced* a bug) and no
  regzbot line;
* a list answer over prebuilt kernels says what it means upstream ("the change
  is in v6.1.187..v6.1.190") and how to continue in a git tree.
"""

from __future__ import annotations

import re
import shlex

from .outcomes import CampaignResult, CampaignStatus, CommitInfo


def short(candidate: str) -> str:
    """A commit as 12 hex digits; a kernel spec (``debian:6.1.0-54``) as it is."""
    return candidate[:12] if re.fullmatch(r"[0-9a-f]{40}", candidate) else candidate


def fixes_line(c: CommitInfo) -> str:
    return f"Fixes: {c.ref}"


def regzbot_line(c: CommitInfo) -> str:
    return f"#regzbot introduced: {c.sha}"


def stable_line(c: CommitInfo) -> str:
    """How a backport to the stable trees is asked for (commit id and subject)."""
    return f"stable backport: commit {c.sha} upstream ({c.subject!r})"


def mail_lines(r: CampaignResult) -> list[str]:
    """The trailer-style lines for the named commit (none for a doubtful one: a
    ``Fixes:`` line is a claim, and a failed verification does not back it)."""
    c = r.culprit
    if c is None or r.status is not CampaignStatus.FOUND:
        return []
    if r.find_fix:
        return [f"fixed by: {c.ref}", stable_line(c)]
    return [fixes_line(c), regzbot_line(c)]


def upstream_range(r: CampaignResult) -> str | None:
    """``the change is in v6.1.187..v6.1.190`` for a list answer whose kernels map upstream."""
    if not (r.first_kernel and r.last_old_kernel):
        return None
    new, old = r.terms.new, r.terms.old
    first = f"first {new} {r.first_kernel}" + (f" = {r.first_upstream}"
                                               if r.first_upstream else "")
    last = f"last {old} {r.last_old_kernel}" + (f" = {r.last_old_upstream}"
                                                if r.last_old_upstream else "")
    if not (r.first_upstream and r.last_old_upstream):
        return f"{first}, {last}: their upstream versions are unknown"
    if r.first_upstream == r.last_old_upstream:
        return (f"{first}, {last}: both are based on {r.first_upstream}, so the change is "
                "in the distro's patches or config, not upstream")
    what = "fix" if r.find_fix else "change"
    return (f"{first}, {last}: the {what} is in "
            f"{r.last_old_upstream}..{r.first_upstream}")


def continue_command(r: CampaignResult, repro: str) -> str | None:
    """The command that bisects the upstream range of a list answer in a git tree."""
    if r.upstream is not None or not (r.first_upstream and r.last_old_upstream) \
            or r.first_upstream == r.last_old_upstream:
        return None
    old, new = r.last_old_upstream, r.first_upstream
    good, bad = (new, old) if r.find_fix else (old, new)
    extra = " --find-fix" if r.find_fix else ""
    return (f"bisector bisect --repro {shlex.quote(repro)} --good {good} --bad {bad} "
            f"--tree PATH{extra}   # PATH: a kernel tree with the {old} and {new} tags")


def headline(r: CampaignResult) -> str:
    """One line: the answer, or why there is none."""
    t = r.terms
    if r.status is CampaignStatus.FOUND and r.culprit is not None:
        label = "first fixed commit" if r.find_fix else "culprit"
        return f"{label}: {r.culprit.sha[:12]} {r.culprit.subject}"
    if r.status is CampaignStatus.FOUND:
        return f"first {t.new} kernel: {r.first_kernel} (last {t.old}: {r.last_old_kernel})"
    if r.status is CampaignStatus.DOUBTFUL and r.culprit is not None:
        return (f"doubtful: the bisection ended at {r.culprit.sha[:12]} {r.culprit.subject}, "
                "but verifying it failed — not presented as the answer")
    if r.status is CampaignStatus.MISMATCH:
        return f"not bisected further: {r.reason}"
    if r.status is CampaignStatus.FAILED:
        return f"failed: {r.reason}"
    names = [c.sha[:12] for c in r.candidates] or r.candidate_kernels
    if not names:
        return f"inconclusive: {r.reason or 'the search did not finish'}"
    return f"inconclusive: the first {t.new} is one of {', '.join(names)}" + (
        f" ({r.reason})" if r.reason else "")
