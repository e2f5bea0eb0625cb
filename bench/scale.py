"""make bench-scale: what k parallel workers buy a bisection and a sweep, in one run.

Measured or simulated in one run, so the ratios compare like with like:

1. multisection over N = 1,000 and N = 16,384 commits in a line, k = 1, 2, 4, 8,
   16 workers (and k = 3 at 16,384), in simulation: the first bad commit uniform
   (fixed seed), verdicts deterministic; each round tests the k commits
   :func:`bisector.search.multisect.pick` chooses over the linear weights.
   Rounds, builds and the wall time under this machine's per-step costs (the
   medians in the SQLite store, else a printed fallback) and the dispatch
   overhead measured in 3; speed-up and builds against k = 1.
   Goal: rounds <= ceil(log_{k+1} N) + 2 in every trial, endpoint checks included;
2. a sweep of 50 kernels x 20 reproducers (1,000 cells) on k workers, simulated:
   a cell costs boot + test + dispatch; a worker fetches (unpacks) a kernel once,
   before its first cell of that kernel; free workers take cells greedily.
   Wall time, cells/hour, speed-up against k = 1.  Goal: >= 6x at 8 workers
   with the locality rule (a free worker prefers a cell whose kernel it has);
3. the dispatch overhead of the real Dask scheduler: a LocalCluster of 2 workers
   (1 thread, resources qemu=1; worker processes if they start here, else
   threads), >= 500 trivial tasks with unique keys, one at a time and in
   batches of k as a round submits them: round trip minus the task's own work.
   Goal: per-task overhead (p95) <= 1 % of one boot.

Part 3 runs first (1 and 2 use what it measures); the tables print in order.
Nothing is written: the store is opened read-only, the fetch is unpacked into
a temporary directory.
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bisector.search.multisect import pick, rounds_needed  # noqa: E402

FALLBACK_BUILD_S, FALLBACK_BOOT_S, FALLBACK_TEST_S = 60.0, 8.0, 8.0
ASSUMED_FETCH_S = 20.0  # a cached-deb unpack, when none can be measured
KS = (1, 2, 4, 8, 16)
SIZES = (1_000, 16_384)
EXTRA = {16_384: (3,)}  # the k = 3 row: few rounds, many builds
KERNELS, REPROS = 50, 20
SPEEDUP_GOAL, SPEEDUP_K = 6.0, 8
OVERHEAD_GOAL = 0.01  # of one boot
TASK_TIMEOUT_S = 60  # a hung worker falls back to threads, not a hung bench
POLICIES = ("fifo", "locality", "locality+spread")
#: what bisector.distributed.DaskCells does: a kernel's cells prefer the worker holding it,
#: and kernels nobody holds yet are spread over the workers (soft: Dask may steal)
GOAL_POLICY = "locality+spread"


# ---------------------------------------------------------------- costs of this machine

@dataclass(frozen=True)
class Cost:
    seconds: float
    source: str


@dataclass(frozen=True)
class Costs:
    build: Cost
    boot: Cost
    test: Cost

    @property
    def step_s(self) -> float:
        return self.build.seconds + self.boot.seconds + self.test.seconds

    @property
    def cell_s(self) -> float:
        return self.boot.seconds + self.test.seconds


def _median(db: Path, sql: str) -> tuple[float, int] | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            vals = [float(r[0]) for r in con.execute(sql)]
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return (statistics.median(vals), len(vals)) if vals else None


def read_costs(db: Path) -> Costs:
    """Medians of the store's real steps (replayed rows skipped), else the fallback."""
    def get(sql: str, what: str, fallback: float) -> Cost:
        got = _median(db, sql) if db.exists() else None
        if got is None:
            return Cost(fallback, "fallback")
        return Cost(got[0], f"median of {got[1]} {what}")

    live = "replayed = 0"
    return Costs(
        get(f"SELECT build_s FROM steps WHERE stage = 'git' AND cached = 0 AND build_s > 0 "
            f"AND {live}", "non-cached git builds", FALLBACK_BUILD_S),
        get(f"SELECT boot_s FROM steps WHERE boot_s > 0 AND {live}", "steps with a boot",
            FALLBACK_BOOT_S),
        get(f"SELECT test_s FROM steps WHERE boot_s > 0 AND {live}", "steps with a boot",
            FALLBACK_TEST_S))


def measure_fetch(given: float | None) -> Cost:
    """One cached-deb unpack (extract + depmod, as the Debian source does), timed."""
    if given is not None:
        return Cost(given, "given (--fetch-s)")
    from bisector import paths
    from bisector.kernel.debs import depmod, extract_deb

    debs = sorted((paths.cache_dir() / "downloads").glob("linux-image-*-amd64-unsigned_*.deb"))
    if not debs:
        return Cost(ASSUMED_FETCH_S, "assumed (no cached Debian kernel .deb to unpack)")
    deb = debs[-1]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tree = Path(tmp) / "tree"
        t0 = time.monotonic()
        extract_deb(deb, tree)
        releases = sorted(p.name for p in (tree / "lib" / "modules").glob("*"))
        if releases:
            depmod(tree, releases[0])
        spent = time.monotonic() - t0
    return Cost(spent, f"measured: unpack + depmod of {deb.name} "
                       f"({deb.stat().st_size >> 20} MiB), 1 run")


# ---------------------------------------------------------------- 3: Dask dispatch

def cell_task(i: int) -> dict[str, Any]:
    """A trivial cell: no work, a small result shaped like a step's."""
    t0 = time.perf_counter()
    time.sleep(0)
    return {"key": i, "verdict": "good", "reason": "", "build_s": 0.0, "boot_s": 0.0,
            "test_s": 0.0, "work_s": time.perf_counter() - t0}


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


@dataclass
class Dispatch:
    mode: str
    note: str
    startup_s: float
    close_s: float
    first_s: float
    single: list[float]  # per-task overhead, one task at a time
    batch: dict[int, list[float]] = field(default_factory=dict)  # size → round overheads

    def round_s(self, m: int) -> float:
        """The median overhead of one round of m tasks (the nearest measured size >= m)."""
        sizes = sorted(self.batch)
        size = next((s for s in sizes if s >= m), sizes[-1])
        return statistics.median(self.batch[size])

    @property
    def task_s(self) -> float:
        return statistics.median(self.single)


def _run_dispatch(processes: bool, tasks: int, rounds: int, sizes: Sequence[int],
                  warmup: int) -> Dispatch:
    import distributed

    def one(key: str, i: int) -> float:
        t = time.perf_counter()
        r = client.submit(cell_task, i, key=key, resources={"qemu": 1},
                          pure=False).result(timeout=TASK_TIMEOUT_S)
        return time.perf_counter() - t - float(r["work_s"])

    t0 = time.monotonic()
    cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=processes, resources={"qemu": 1},
        dashboard_address=None)
    try:
        client = distributed.Client(cluster, timeout=TASK_TIMEOUT_S)  # type: ignore[no-untyped-call]
        startup = time.monotonic() - t0
        try:
            first = one("cell-0-first-1", -1)
            for i in range(warmup):
                one(f"cell-0-{i}-1", i)
            single = [one(f"cell-1-{i}-1", i) for i in range(tasks)]
            batch: dict[int, list[float]] = {}
            for m in sizes:
                for rnd in range(rounds):
                    t = time.perf_counter()
                    futs = [client.submit(cell_task, j, key=f"cell-b{m}-{rnd}-{j}",
                                          resources={"qemu": 1}, pure=False) for j in range(m)]
                    res = [f.result(timeout=TASK_TIMEOUT_S) for f in futs]
                    spent = time.perf_counter() - t
                    batch.setdefault(m, []).append(spent - max(float(x["work_s"]) for x in res))
        finally:
            t = time.monotonic()
            client.close()  # type: ignore[no-untyped-call]
    finally:
        cluster.close()
    close = time.monotonic() - t
    mode = "processes=True" if processes else "processes=False"
    return Dispatch(mode, "", startup, close, first, single, batch)


def measure_dispatch(tasks: int, rounds: int, sizes: Sequence[int], threads: bool,
                     warmup: int = 20) -> Dispatch:
    if not threads:
        try:
            return _run_dispatch(True, tasks, rounds, sizes, warmup)
        except Exception as exc:  # a worker process that will not start here
            note = f"worker processes failed ({type(exc).__name__}: {exc}); threads used"
            d = _run_dispatch(False, tasks, rounds, sizes, warmup)
            d.note = note
            return d
    d = _run_dispatch(False, tasks, rounds, sizes, warmup)
    d.note = "threads (--threads)"
    return d


# ---------------------------------------------------------------- 1: multisection

def split(lo: int, hi: int, k: int, window: bool = True) -> list[int]:
    """The commits one round tests: :func:`pick` over the linear weights.

    Commits are positions; ``lo`` is the newest good, ``hi`` the oldest bad, so the
    n = hi - lo commits lo+1..hi are in play and lo+1..hi-1 untested, position p of
    weight p - lo.  With ``window`` only the 2k+2 commits around each split target
    are offered to :func:`pick`; its greedy nearest-first choice of at most k
    commits cannot reach further, so the picks are the same (the unit test checks)
    and a round costs O(k²), not O(k·N)."""
    n = hi - lo
    k = min(k, n - 1)
    if k <= 0:
        return []
    offer: set[int] = set()
    if window:
        for i in range(1, k + 1):
            t = n * i / (k + 1)
            offer.update(range(max(1, math.floor(t) - k), min(n - 1, math.ceil(t) + k) + 1))
    if not window or len(offer) >= n - 1:
        offer = set(range(1, n))
    weights = {str(w): w for w in sorted(offer)}
    return [lo + int(c) for c in pick(weights, n, k, list(weights))]


def bisect_line(n: int, k: int, first_bad: int) -> tuple[int, int]:
    """(search rounds, commits tested) to find ``first_bad`` among positions 1..n.

    Position 0 is the good endpoint, n the bad one (both checked beforehand)."""
    lo, hi = 0, n
    rounds = tested = 0
    while hi - lo > 1:
        batch = split(lo, hi, k)
        rounds += 1
        tested += len(batch)
        for p in batch:
            if p >= first_bad:
                hi = min(hi, p)
            else:
                lo = max(lo, p)
    assert hi == first_bad, (n, k, first_bad, lo, hi)
    return rounds, tested


def endpoint_rounds(k: int) -> int:
    """The good and bad endpoint checks: one round when 2 workers can run them at once."""
    return 2 if k == 1 else 1


@dataclass(frozen=True)
class BisectRow:
    n: int
    k: int
    search: list[int]  # search rounds per trial
    builds: list[int]  # endpoints included
    walls: list[float]

    @property
    def rounds_max(self) -> int:
        return max(self.search) + endpoint_rounds(self.k)

    @property
    def bound(self) -> int:
        return rounds_needed(self.n, self.k) + 2

    @property
    def ok(self) -> bool:
        return self.rounds_max <= self.bound


def simulate_bisections(n: int, k: int, trials: int, seed: int, costs: Costs,
                        disp: Dispatch) -> BisectRow:
    rng = random.Random(f"{seed}:{n}")  # the same culprits for every k
    search, builds, walls = [], [], []
    ends = endpoint_rounds(k)
    ends_ovh = 2 * disp.round_s(1) if k == 1 else disp.round_s(2)
    for _ in range(trials):
        rounds, tested = bisect_line(n, k, rng.randint(1, n))
        search.append(rounds)
        builds.append(tested + 2)
        walls.append((rounds + ends) * costs.step_s + rounds * disp.round_s(k) + ends_ovh)
    return BisectRow(n, k, search, builds, walls)


# ---------------------------------------------------------------- 2: the sweep

@dataclass(frozen=True)
class SweepRow:
    policy: str
    k: int
    wall_s: float
    fetches: int
    cells: int

    @property
    def per_hour(self) -> float:
        return self.cells / self.wall_s * 3600


def simulate_sweep(k: int, policy: str, cell_s: float, fetch_s: float, dispatch_s: float,
                   kernels: int = KERNELS, repros: int = REPROS) -> SweepRow:
    """Greedy list scheduling of kernels x repros cells (kernel-major, the sweep's order).

    ``fifo``: a free worker takes the next cell.  ``locality``: it takes a cell of
    a kernel it already has (its current one first), else the next cell.
    ``locality+spread``: as locality, but without a kernel of its own it takes the
    next cell of a kernel no worker has fetched yet, and only then the next cell."""
    pending = [list(range(repros)) for _ in range(kernels)]
    held: list[set[int]] = [set() for _ in range(k)]
    current: list[int | None] = [None] * k
    free_at = [0.0] * k
    anyone: set[int] = set()
    fetches = 0
    for _ in range(kernels * repros):
        w = min(range(k), key=lambda i: (free_at[i], i))
        kern: int | None = None
        if policy != "fifo":
            cur = current[w]
            mine = ([cur] if cur is not None else []) + sorted(held[w])
            kern = next((x for x in mine if pending[x]), None)
        if kern is None and policy == "locality+spread":
            kern = next((x for x in range(kernels) if pending[x] and x not in anyone), None)
        if kern is None:
            kern = next(x for x in range(kernels) if pending[x])
        pending[kern].pop(0)
        spent = dispatch_s + cell_s
        if kern not in held[w]:
            held[w].add(kern)
            anyone.add(kern)
            fetches += 1
            spent += fetch_s
        current[w] = kern
        free_at[w] += spent
    return SweepRow(policy, k, max(free_at), fetches, kernels * repros)


# ---------------------------------------------------------------- the tables

def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table_bisect(rows: list[BisectRow], costs: Costs, disp: Dispatch, trials: int,
                 seed: int) -> bool:
    print("1. Multisection over N commits in a line, k workers (simulation)")
    print(f"   {trials} trials per row, seed {seed}, first bad uniform over 1..N, "
          "deterministic verdicts")
    print("   rounds include the endpoint checks (good + bad): 2 rounds at k = 1, 1 round of "
          "2 parallel steps at k >= 2")
    print("   builds = distinct commits built: every tested commit + the 2 endpoints")
    print(f"   step = build {costs.build.seconds:.2f} s ({costs.build.source})")
    print(f"        + boot {costs.boot.seconds:.2f} s ({costs.boot.source})")
    print(f"        + test {costs.test.seconds:.2f} s ({costs.test.source}) = "
          f"{costs.step_s:.2f} s")
    print("   round = one step (the k run in parallel) + the Dask overhead of a batch of k "
          f"measured in 3 ({1000 * disp.round_s(1):.1f} ms at k = 1, "
          f"{1000 * disp.round_s(16):.1f} ms at k = 16)")
    head = (f"   {'N':>6} {'k':>3} {'search rounds':>13} {'rounds':>6} {'goal':>5} "
            f"{'builds':>7} {'builds':>6} {'builds':>7} {'wall':>7} {'speed-up':>8} {'':4}")
    sub = (f"   {'':>6} {'':>3} {'mean   max':>13} {'max':>6} {'<=':>5} "
           f"{'mean':>7} {'max':>6} {'vs k=1':>7} {'mean s':>7} {'vs k=1':>8} {'':4}")
    print(head)
    print(sub)
    print("   " + "-" * (len(head) - 3))
    base: dict[int, BisectRow] = {r.n: r for r in rows if r.k == 1}
    for r in rows:
        b = base[r.n]
        builds = statistics.mean(r.builds)
        wall = statistics.mean(r.walls)
        print(f"   {r.n:>6} {r.k:>3} {statistics.mean(r.search):6.2f} {max(r.search):6d} "
              f"{r.rounds_max:>6} {r.bound:>5} {builds:7.1f} {max(r.builds):6d} "
              f"{builds / statistics.mean(b.builds):6.2f}x {wall:7.1f} "
              f"{statistics.mean(b.walls) / wall:7.2f}x {verdict(r.ok)}")
        if r.k == 16 and r.n != rows[-1].n:
            print()
    ok = all(r.ok for r in rows)
    print(f"   goal: rounds <= ceil(log_(k+1) N) + 2 in every trial (endpoints included): "
          f"{verdict(ok)} ({sum(r.ok for r in rows)}/{len(rows)} rows)")
    for r in rows:
        if r.k == 3:
            b = base[r.n]
            print(f"   the price, k = 3 over {r.n:,}: {max(r.search)} search rounds instead of "
                  f"{max(b.search)}, but {statistics.mean(r.builds) - 2:.1f} builds instead of "
                  f"{statistics.mean(b.builds) - 2:.1f} (endpoints excluded; "
                  f"{statistics.mean(r.builds):.1f} vs {statistics.mean(b.builds):.1f} with them)")
    return ok


def table_sweep(rows: list[SweepRow], costs: Costs, fetch: Cost, disp: Dispatch,
                alt: dict[str, float] | None) -> bool:
    print(f"2. Sweep of {KERNELS} kernels x {REPROS} reproducers = {KERNELS * REPROS} cells "
          "on k workers (simulation)")
    print(f"   cell = boot {costs.boot.seconds:.2f} s + test {costs.test.seconds:.2f} s + Dask "
          f"dispatch {1000 * disp.task_s:.1f} ms (the median measured in 3)")
    print(f"   kernel fetch {fetch.seconds:.2f} s, {fetch.source},")
    print("   once per kernel per worker that runs one of its cells")
    print("   cells queued kernel-major (the sweep's order); a free worker takes greedily:")
    print("     fifo             the next cell")
    print("     locality         a cell of a kernel it has (its current one first), else the "
          "next cell")
    print("     locality+spread  as locality, else the next cell of a kernel no worker has "
          "yet, else the next cell")
    head = (f"   {'policy':16} {'k':>3} {'fetches':>7} {'wall h':>7} {'cells/h':>8} "
            f"{'speed-up':>8} {'per worker':>10}")
    print(head)
    print("   " + "-" * (len(head) - 3))
    base = next(r for r in rows if r.k == 1 and r.policy == GOAL_POLICY)
    for pol in POLICIES:
        for r in (x for x in rows if x.policy == pol):
            sp = base.wall_s / r.wall_s
            print(f"   {r.policy:16} {r.k:>3} {r.fetches:>7} {r.wall_s / 3600:7.2f} "
                  f"{r.per_hour:8.0f} {sp:7.2f}x {sp / r.k:9.2f}x")
        print()
    same = [(r.wall_s, r.fetches) for r in rows if r.policy == "fifo"] == [
        (r.wall_s, r.fetches) for r in rows if r.policy == "locality"]
    if same:
        print("   note: locality = fifo here: with the queue kernel-major, the k workers all "
              "start on kernel 1, and whoever runs out of")
        every = all(r.fetches == KERNELS * r.k for r in rows if r.policy == "locality")
        print("   cells of its kernels takes the next cell, a kernel the others already hold"
              + (" (every worker fetches every kernel)" if every else ""))
    goal = next(r for r in rows if r.k == SPEEDUP_K and r.policy == GOAL_POLICY)
    sp = base.wall_s / goal.wall_s
    ok = sp >= SPEEDUP_GOAL
    print(f"   goal: throughput >= {SPEEDUP_GOAL:g}x at {SPEEDUP_K} workers ({GOAL_POLICY}): "
          f"{verdict(ok)} ({sp:.2f}x, {goal.per_hour:.0f} vs {base.per_hour:.0f} cells/h)")
    if alt:
        print(f"   at the assumed {ASSUMED_FETCH_S:g} s fetch instead, {SPEEDUP_K} workers: "
              + ", ".join(f"{p} {v:.2f}x" for p, v in alt.items()) + " (not a goal)")
    return ok


def table_dispatch(disp: Dispatch, costs: Costs, tasks: int) -> bool:
    boot = costs.boot.seconds
    limit = OVERHEAD_GOAL * boot
    print("3. Dask dispatch overhead: LocalCluster(n_workers=2, threads_per_worker=1, "
          f"{disp.mode}, resources={{'qemu': 1}})")
    print(f"   cluster + client start {disp.startup_s:.2f} s, close {disp.close_s:.2f} s, "
          f"first task {1000 * disp.first_s:.1f} ms (cold; then 20 warm-up tasks, not counted)"
          + (f"; {disp.note}" if disp.note else ""))
    print("   overhead = submit -> result round trip minus the task's own work (sleep(0), "
          "timed inside the task); unique keys, pure=False, resources={'qemu': 1}")
    head = (f"   {'submitted':18} {'rounds':>6} {'tasks':>6} {'round ms':>9} {'round ms':>9} "
            f"{'per task ms':>11} {'% of boot':>9} {'':4}")
    sub = (f"   {'':18} {'':>6} {'':>6} {'median':>9} {'p95':>9} {'p95':>11} "
           f"{f'{boot:.2f} s':>9} {'':4}")
    print(head)
    print(sub)
    print("   " + "-" * (len(head) - 3))
    oks = []

    def row(label: str, values: list[float], m: int) -> None:
        per = pct(values, 0.95) / m
        ok = per <= limit
        oks.append(ok)
        print(f"   {label:18} {len(values):>6} {len(values) * m:>6} "
              f"{1000 * statistics.median(values):9.2f} {1000 * pct(values, 0.95):9.2f} "
              f"{1000 * per:11.2f} {100 * per / boot:8.2f}% {verdict(ok)}")

    row("one at a time", disp.single, 1)
    for m, values in disp.batch.items():
        row(f"batches of {m}", values, m)
    ok = all(oks)
    print(f"   goal: per-task overhead (p95) <= {100 * OVERHEAD_GOAL:g} % of a boot "
          f"({1000 * limit:.1f} ms): {verdict(ok)}; batches of k > 2 queue on the 2 workers, "
          "so their round overhead is an upper bound")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    from bisector.store import db_path

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="200 trials, 200 Dask tasks, 20 rounds per batch size: a smoke run")
    ap.add_argument("--trials", type=int, help="bisections per row (default 1000; --quick 200)")
    ap.add_argument("--tasks", type=int, help="Dask tasks one at a time (default 500)")
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--db", type=Path, default=db_path(), help="the store to read costs from")
    ap.add_argument("--fetch-s", type=float, help="kernel fetch cost instead of measuring one")
    ap.add_argument("--threads", action="store_true",
                    help="Dask workers as threads (processes=False) without trying processes")
    args = ap.parse_args(argv)
    trials = args.trials or (200 if args.quick else 1000)
    tasks = args.tasks or (200 if args.quick else 500)
    rounds = 20 if args.quick else 50
    start = time.monotonic()

    costs = read_costs(args.db)
    sizes = sorted({1, 2, *KS, *(k for ks in EXTRA.values() for k in ks)})
    print(f"costs from {args.db}; measuring Dask dispatch ({tasks} tasks + {rounds} rounds "
          f"per batch size {sizes}) …", flush=True)
    disp = measure_dispatch(tasks, rounds, sizes, args.threads)
    fetch = measure_fetch(args.fetch_s)
    print(f"… done in {time.monotonic() - start:.0f} s; simulating …\n", flush=True)

    brows = [simulate_bisections(n, k, trials, args.seed, costs, disp)
             for n in SIZES for k in sorted({*KS, *EXTRA.get(n, ())})]
    srows = [simulate_sweep(k, pol, costs.cell_s, fetch.seconds, disp.task_s)
             for pol in POLICIES for k in KS]
    alt = None
    if abs(fetch.seconds - ASSUMED_FETCH_S) > 0.5:
        b = simulate_sweep(1, GOAL_POLICY, costs.cell_s, ASSUMED_FETCH_S, disp.task_s).wall_s
        alt = {pol: b / simulate_sweep(SPEEDUP_K, pol, costs.cell_s, ASSUMED_FETCH_S,
                                       disp.task_s).wall_s for pol in POLICIES}

    ok1 = table_bisect(brows, costs, disp, trials, args.seed)
    print()
    ok2 = table_sweep(srows, costs, fetch, disp, alt)
    print()
    ok3 = table_dispatch(disp, costs, tasks)
    print(f"\n{verdict(ok1 and ok2 and ok3)}: bisection rounds {verdict(ok1)}, sweep throughput "
          f"{verdict(ok2)}, dispatch overhead {verdict(ok3)}; "
          f"{time.monotonic() - start:.0f} s")
    return 0 if ok1 and ok2 and ok3 else 1


if __name__ == "__main__":
    sys.exit(main())
