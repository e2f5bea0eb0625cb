"""git_bayesect's search, as a benchmark policy: the Bayesian bisector the issue measures us by.

A port of ``Bisector`` from https://github.com/hauntsaninja/git_bayesect (MIT,
(c) 2025 hauntsaninja): a posterior over "the change is at index b" with both
failure rates unknown and marginalised under Jeffreys Beta(0.5, 0.5) priors
(Beta-Bernoulli conjugacy), and the next commit chosen by the least expected
posterior entropy, ties to the middle.  It has no "flake" hypothesis and no
notion of build cost: any commit may be run next, so nearly every run is a new
build.  A SKIP zeroes that commit's prior, as upstream does.  The stop rule is
ours (the top hypothesis reaches the bench's target), so confidence means the
same in every row, with ours' safety net of a run budget: with no culprit in the
range (the flake cell) the posterior never concentrates.

Orientation: upstream's index 0 is the newest commit and "index <= b" is the
changed side; the bench's candidate 0 is the oldest, so candidate c is index
n - 1 - c.  Upstream's range ends at the known-old commit, which can be run but
never be the change (its calibration never puts the change there); here that is
index n, candidate -1, the parent of the bench's first candidate.  log Beta
values come from a table of lgamma(k + 1/2) and lgamma(k + 1), which is exact
for Jeffreys priors and needs only numpy.
"""

from __future__ import annotations

import math

import numpy as np

from bisector.search.baselines import PolicyAnswer
from bisector.verdict import Verdict


class _LogGamma:
    """lgamma(k + 0.5) and lgamma(k + 1) for k = 0..size-1, grown on demand."""

    def __init__(self) -> None:
        self.half = np.zeros(0)
        self.one = np.zeros(0)

    def ensure(self, size: int) -> None:
        if size > len(self.half):
            size = max(size, 2 * len(self.half), 256)
            self.half = np.array([math.lgamma(k + 0.5) for k in range(size)])
            self.one = np.array([math.lgamma(k + 1.0) for k in range(size)])

    def log_beta(self, yes: np.ndarray, no: np.ndarray) -> np.ndarray:
        """log B(0.5 + yes, 0.5 + no) - log B(0.5, 0.5)."""
        return (self.half[yes] + self.half[no] - self.one[yes + no]
                - 2 * self.half[0] + self.one[0])


_LG = _LogGamma()


def _wlog(w: np.ndarray) -> np.ndarray:
    out = np.zeros_like(w)
    pos = w > 0.0
    out[pos] = w[pos] * np.log2(w[pos])
    return out


class BayesectPolicy:
    """bench/flaky.py's RunPolicy for git_bayesect's selection rule."""

    def __init__(self, n: int, target: float, max_runs: int) -> None:
        self.n, self.target, self.max_runs = n, target, max_runs
        self.prior = np.ones(n + 1)
        self.prior[n] = 0.0  # the known-old end: run it, but it is not the change
        self.yes = np.zeros(n + 1, dtype=np.int64)  # failures on or before index (obs_yes)
        self.total = np.zeros(n + 1, dtype=np.int64)
        self.skips = 0

    def _posterior(self) -> np.ndarray:
        _LG.ensure(int(self.total[-1]) + 2)
        yes_l, tot_l = self.yes, self.total
        yes_r, tot_r = yes_l[-1] - yes_l, tot_l[-1] - tot_l
        log_post = (np.where(self.prior > 0, np.log(np.maximum(self.prior, 1e-300)), -np.inf)
                    + _LG.log_beta(yes_l, tot_l - yes_l) + _LG.log_beta(yes_r, tot_r - yes_r))
        post = np.exp(log_post - log_post.max())
        return post / post.sum()

    def _select(self, post: np.ndarray) -> int:
        yes_l, tot_l = self.yes, self.total
        yes_r, tot_r = yes_l[-1] - yes_l, tot_l[-1] - tot_l
        p_new = (0.5 + yes_l) / (1.0 + tot_l)
        p_old = (0.5 + yes_r) / (1.0 + tot_r)
        size = self.n + 1
        expected = np.zeros(size)
        for w_new, w_old in ((post * p_new, post * p_old),
                             (post * (1 - p_new), post * (1 - p_old))):
            mass = (np.cumsum(w_old) - w_old) + np.cumsum(w_new[::-1])[::-1]
            wl_new, wl_old = _wlog(w_new), _wlog(w_old)
            wlogs = (np.cumsum(wl_old) - wl_old) + np.cumsum(wl_new[::-1])[::-1]
            ok = mass > 0
            ent = np.zeros(size)
            ent[ok] = np.log2(mass[ok]) - wlogs[ok] / mass[ok]
            expected += ent * mass
        best = np.flatnonzero(np.isclose(expected, expected.min(), rtol=1e-12, atol=1e-15))
        return int(best[np.argmin(np.abs(best - size // 2))])

    def next_candidate(self) -> int | None:
        post = self._posterior()
        if post.max() >= self.target or self.total[-1] + self.skips >= self.max_runs:
            return None
        return self.n - 1 - self._select(post)

    def record(self, candidate: int, verdict: Verdict) -> None:
        index = self.n - 1 - candidate
        if verdict is Verdict.SKIP:
            self.skips += 1
            self.prior[index] = 0.0
            return
        self.total[index:] += 1
        if verdict is Verdict.BAD:
            self.yes[index:] += 1

    def answer(self) -> PolicyAnswer:
        post = self._posterior()
        index = int(np.argmax(post))
        return PolicyAnswer(self.n - 1 - index, confidence=float(post[index]))
