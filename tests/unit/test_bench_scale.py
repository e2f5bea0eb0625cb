"""bench/scale.py's simulations at small sizes (no Dask, no store, no kernel fetch)."""

from __future__ import annotations

import math
from types import ModuleType

import pytest

from tests.fakes.bench import load_bench


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    return load_bench("scale")


@pytest.mark.parametrize("n", [2, 3, 7, 16, 100, 128])
def test_one_worker_is_plain_bisection(scale: ModuleType, n: int) -> None:
    results = [scale.bisect_line(n, 1, bad) for bad in range(1, n + 1)]
    assert max(r for r, _ in results) == math.ceil(math.log2(n))
    assert all(tested == r for r, tested in results)  # one build per round
    if n & (n - 1) == 0:  # a power of two: every culprit takes exactly log2 n
        assert {r for r, _ in results} == {int(math.log2(n))}


@pytest.mark.parametrize("n", [2, 5, 16, 64, 100, 257])
def test_three_workers_within_the_bound(scale: ModuleType, n: int) -> None:
    worst = max(scale.bisect_line(n, 3, bad)[0] for bad in range(1, n + 1))
    assert worst <= math.ceil(math.log(n, 4) - 1e-9) + 2
    if n in (16, 64):  # 4^m commits split exactly
        assert worst == round(math.log(n, 4))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 16, 17])
def test_the_window_offers_pick_what_it_would_pick_anyway(scale: ModuleType, k: int) -> None:
    for n in [*range(2, 90), 1000, 16_384]:
        for lo in (0, 11):
            assert scale.split(lo, lo + n, k) == scale.split(lo, lo + n, k, window=False), (n, k)


def test_rows_count_endpoints_as_the_brief_says(scale: ModuleType) -> None:
    assert scale.endpoint_rounds(1) == 2
    assert scale.endpoint_rounds(4) == 1


def test_sweep_one_worker_fetches_each_kernel_once(scale: ModuleType) -> None:
    for pol in scale.POLICIES:
        r = scale.simulate_sweep(1, pol, cell_s=10.0, fetch_s=5.0, dispatch_s=0.0,
                                 kernels=4, repros=3)
        assert r.fetches == 4
        assert r.wall_s == pytest.approx(4 * 5.0 + 12 * 10.0)


def test_sweep_spread_fetches_less_than_fifo(scale: ModuleType) -> None:
    kw = dict(cell_s=10.0, fetch_s=20.0, dispatch_s=0.0, kernels=8, repros=6)
    fifo = scale.simulate_sweep(4, "fifo", **kw)
    spread = scale.simulate_sweep(4, "locality+spread", **kw)
    assert spread.fetches < fifo.fetches
    assert spread.wall_s < fifo.wall_s
    assert spread.wall_s >= (8 * 20.0 + 48 * 10.0) / 4  # no better than perfect balance
