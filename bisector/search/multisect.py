"""Multisection: with k testers free, test k commits per round instead of one.

The k commits split what is left into k+1 parts of (nearly) equal size, so a
deterministic search over N candidates takes ⌈log_{k+1} N⌉ rounds instead of
⌈log2 N⌉ — at the price of more builds in all (k per round): Chromium's
Pinpoint tests several midpoints per round for the same reason.  With k = 1
this is ordinary bisection.

Over a DAG the "size" of a candidate is its weight: how many of the commits
still in play it has as ancestors (itself included), the quantity plain
bisection halves.  The k picks are the untested commits whose weights are
nearest to n·i/(k+1), i = 1..k, each used once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def targets(n: int, k: int) -> list[float]:
    """The ideal weights of k split points over n candidates."""
    return [n * i / (k + 1) for i in range(1, k + 1)]


def pick(weights: Mapping[str, int], n: int, k: int,
         order: Sequence[str] | None = None) -> list[str]:
    """k distinct candidates (fewer when fewer are left) nearest to the split targets.

    ``weights``: untested candidate → its weight; ``n``: the commits in play (the
    pool the weights count); ``order``: tie-break order (topological, as plain
    bisection breaks ties), default the mapping's order."""
    rank = {c: i for i, c in enumerate(order or list(weights))}
    free = dict(weights)
    out: list[str] = []
    for t in targets(n, min(k, len(free))):
        if not free:
            break
        best = min(free, key=lambda c: (abs(free[c] - t), rank.get(c, 0)))
        out.append(best)
        del free[best]
    return sorted(out, key=lambda c: weights[c])


def rounds_needed(n: int, k: int) -> int:
    """Rounds a deterministic multisection needs over n candidates (n ≥ 1)."""
    return math.ceil(math.log(max(n, 1)) / math.log(k + 1) - 1e-9) if n > 1 else 0
