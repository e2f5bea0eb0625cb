"""Tonight against the previous nights: KernelCI's tree-comparison categories.

Comparison is per *track* (kernel line × reproducer × param set): a line's
value on a night is the result of its newest kernel tested that night, so
"GOOD → BAD on the same kernel line" is a new regression whether the line is
a Debian series that gained a kernel or a branch whose tip moved.  Cells
(one kernel each) give appeared / disappeared.  Only GOOD and BAD compare:
SKIP is "untestable", INFRA and PENDING are no result at all (never a
regression, never a fix).  A track whose runs disagree, or whose value
flipped back and forth over its last 5 results within 7 days (as KernelCI
looks at them), is unstable rather than regressed or fixed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .model import Category, CellKey, CellResult, CellStatus, Change

#: KernelCI's window for flip detection
FLIP_RESULTS, FLIP_DAYS = 5, 7.0


@dataclass(frozen=True)
class Night:
    """A track's value on one past night (newest kernel tested that night)."""

    sweep_id: int
    date: str
    result: CellResult


def newest(cells: Sequence[CellResult]) -> CellResult | None:
    """The line value: the newest kernel's cell (by its order in the line)."""
    return max(cells, key=lambda c: c.kernel_order) if cells else None


def nights_of(history: Sequence[tuple[int, str, CellResult]]) -> list[Night]:
    """(sweep id, date, cell) rows, newest first → one :class:`Night` per sweep."""
    per: dict[int, tuple[str, list[CellResult]]] = {}
    for sid, date, cell in history:
        per.setdefault(sid, (date, []))[1].append(cell)
    out = []
    for sid in sorted(per, reverse=True):
        date, cells = per[sid]
        value = newest(cells)
        assert value is not None
        out.append(Night(sid, date, value))
    return out


def _days_between(a: str, b: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%S"
    return abs(time.mktime(time.strptime(a[:19], fmt)) - time.mktime(time.strptime(b[:19], fmt))
               ) / 86400


def flipped(tonight: CellResult, now: str, nights: Sequence[Night]) -> bool:
    """GOOD/BAD changed back and forth (3+ changes) over the last 5 tested results
    within 7 days: one change is a regression or a fix, two are a regression fixed."""
    seq = [tonight.status] + [n.result.status for n in nights
                              if n.result.status.tested and _days_between(now, n.date)
                              <= FLIP_DAYS]
    seq = [s for s in seq if s.tested][:FLIP_RESULTS]
    flips = sum(1 for a, b in itertools.pairwise(seq) if a is not b)
    return flips >= 3  # G→B→G is a regression and its fix; G→B→G→B is flipping


def flake_rate(cells: Sequence[CellResult]) -> float | None:
    """Of the runs on kernels that showed the failure at least once, the share that
    passed: how often the bug hides (None when no run disagreed with another)."""
    mixed = [c for c in cells if c.disagree]
    if not mixed:
        return None
    runs = sum(c.runs for c in cells if c.fails)
    fails = sum(c.fails for c in cells if c.fails)
    return round(1 - fails / runs, 3) if runs else None


def known_flaky(tonight: CellResult, now: str, nights: Sequence[Night],
                past_cells: Sequence[CellResult]) -> bool:
    return (tonight.disagree or flipped(tonight, now, nights)
            or any(c.disagree for c in past_cells))


def _failing_since(tonight: CellResult, nights: Sequence[Night], now: str) -> tuple[str, int]:
    since, count = now, 1
    for n in nights:
        if n.result.status is CellStatus.BAD:
            since, count = n.date, count + 1
        elif n.result.status is CellStatus.GOOD:
            break
    return since[:10], count


def _row(category: Category, tonight: CellResult, prev: Night | None,
         past_cells: Sequence[CellResult], *, since: str | None = None, nights: int = 0,
         note: str = "") -> Change:
    k = tonight.key
    return Change(category=category, line=k.line, reproducer=k.reproducer, params=k.params,
                  kernel=k.kernel, status=tonight.status, cell_id=k.id,
                  previous_kernel=prev.result.key.kernel if prev else None,
                  previous_status=prev.result.status if prev else None,
                  since=since, nights=nights, note=note,
                  flake_rate=flake_rate([tonight, *past_cells]))


def compare_track(tonight: CellResult, now: str, nights: Sequence[Night],
                  past_cells: Sequence[CellResult]) -> Change | None:
    """The category of one track tonight (None: no result tonight, nothing to say)."""
    if not (tonight.status.tested or tonight.status is CellStatus.SKIP):
        return None
    tested = [n for n in nights if n.result.status.tested]
    prev = tested[0] if tested else None

    def row(category: Category, **kw: object) -> Change:
        return _row(category, tonight, prev, past_cells, **kw)  # type: ignore[arg-type]

    if tonight.status is CellStatus.SKIP:
        if not nights:
            return row(Category.APPEARED, note="untestable")
        skips = 1 + next((i for i, n in enumerate(nights)
                          if n.result.status is not CellStatus.SKIP), len(nights))
        return row(Category.NEWLY_UNTESTABLE, nights=skips, note=tonight.reason[:200])
    if tonight.disagree or flipped(tonight, now, nights):
        why = (f"{tonight.fails} of {tonight.runs} runs failed" if tonight.disagree
               else "flipped between good and bad over the last nights")
        return row(Category.UNSTABLE, note=why)
    bad = tonight.status is CellStatus.BAD
    if prev is None:
        return row(Category.NEW_FAILURE if bad else Category.NEW_PASS)
    was_bad = prev.result.status is CellStatus.BAD
    if bad and was_bad:
        since, count = _failing_since(tonight, nights, now)
        return row(Category.STILL_FAILING, since=since, nights=count)
    if bad:
        return row(Category.NEW_REGRESSION, since=now[:10], nights=1)
    return row(Category.FIXED if was_bad else Category.STILL_PASSING)


def cell_changes(tonight: Sequence[CellResult], previous: Sequence[CellResult] | None,
                 tracked: set[str]) -> list[Change]:
    """Cells that appeared or disappeared since the previous sweep (None: first sweep).
    Cells whose track already has a line-level row (``tracked``: cell ids) add nothing."""
    if previous is None:
        return []
    now_ids = {c.key.id for c in tonight}
    tracks = {(c.key.line, c.key.reproducer, c.key.params) for c in tonight}
    before = {c.key.id: c for c in previous}
    out = []
    for c in tonight:
        if c.key.id not in before and c.key.id not in tracked and not _moved_tip(c, tracks):
            out.append(_cell_row(Category.APPEARED, c))
    for cid, c in before.items():
        if cid not in now_ids and not _moved_tip(c, tracks):
            out.append(_cell_row(Category.DISAPPEARED, c))
    return out


def _moved_tip(c: CellResult, tracks: set[tuple[str, str, str]]) -> bool:
    """A branch's tip is a new kernel every night: its track, not its cell, is the news."""
    return c.key.kernel.startswith("git:") and (c.key.line, c.key.reproducer,
                                                 c.key.params) in tracks


def _cell_row(cat: Category, c: CellResult) -> Change:
    k: CellKey = c.key
    return Change(category=cat, line=k.line, reproducer=k.reproducer, params=k.params,
                  kernel=k.kernel, status=c.status, cell_id=k.id,
                  note=c.kernel_label or k.kernel)


ORDER = list(Category)


def sort_changes(changes: list[Change]) -> list[Change]:
    return sorted(changes, key=lambda c: (ORDER.index(c.category), c.line, c.reproducer,
                                          c.params))
