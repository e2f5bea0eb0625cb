"""make bench-bisect: how a real bisection spends its time, on the demo tree.

Measured in one run, so the ratios compare like with like:

1. bisection #1 on a fresh bisector cache (cold artifact cache, empty build
   dir, empty ccache): its first build is a clean build of the demo config and
   is the baseline; the per-step incremental builds after it are compared
   with it (goal <= 0.2x); builds vs ceil(log2 N) + 1; total split into
   build / boot / test / overhead (goal: overhead <= 5 %);
2. bisection #2, identical: must do 0 builds;
3. with --clean-baseline, also a separate clean build without ccache.

The guest image and downloads are shared with the normal cache (symlinked);
everything else lives under bench/results/cache and is deleted first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bisector import paths, proc  # noqa: E402
from bisector.campaign import BisectArgs, run_campaign  # noqa: E402
from bisector.outcomes import Stage, Step  # noqa: E402
from bisector.search import Handler  # noqa: E402
from bisector.store import Store  # noqa: E402

GRE = REPO / "reproducers" / "gre-ecn-mac-corruption.yaml"


class Quiet(Handler):
    def step_finished(self, stage: Stage, index: int, o: Step) -> None:
        print(f"  {stage.value:6} {o.candidate[:12]} {o.verdict.name:4} build {o.build_s:6.1f}s"
              f"{' (cached)' if o.cached else '         '} boot {o.boot_s:5.1f}s "
              f"test {o.test_s:5.1f}s", flush=True)

    def message(self, text: str) -> None:
        if text.startswith("building"):
            print(f"  {text}", flush=True)


def fresh_cache(root: Path) -> Path:
    main = paths.cache_dir()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for shared in ("images", "downloads", "accel-probe.json"):
        if (main / shared).exists():
            (root / shared).symlink_to(main / shared)
    return root


def clean_build(tree: Path, config: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copyfile(config, out / ".config")
    t0 = time.monotonic()
    proc.run(["make", "-C", tree, f"O={out}", "ARCH=x86_64", f"-j{os.cpu_count() or 2}",
              "bzImage"], timeout=4 * 3600, log_file=out.parent / "clean-build.log",
             env={"KBUILD_BUILD_TIMESTAMP": "bisector", "LOCALVERSION": ""})
    return time.monotonic() - t0


def bisect_once(tree: Path, store: Store, label: str) -> dict[str, object]:
    print(f"{label}:", flush=True)
    args = BisectArgs(repro=str(GRE), good=["v6.1.192"], bad=["main"], tree=str(tree),
                      accel="tcg")
    t0 = time.monotonic()
    cr = run_campaign(args, Quiet(), store)
    wall = time.monotonic() - t0
    steps = [s for s in store.steps(cr.campaign_id) if not s.replayed]
    built = [s for s in steps if s.built]
    return {"wall": wall, "status": cr.status.value,
            "culprit": cr.culprit.sha if cr.culprit else None,
            "steps": len(steps), "builds": len(built),
            "build_times": [s.build_s for s in built],
            "build": sum(s.build_s for s in steps), "boot": sum(s.boot_s for s in steps),
            "test": sum(s.test_s for s in steps)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo-dir", type=Path, default=paths.cache_dir() / "demo")
    ap.add_argument("--again", action="store_true",
                    help="keep bench/results/cache and run only the identical bisection")
    ap.add_argument("--clean-baseline", action="store_true",
                    help="also time a separate clean build without ccache")
    args = ap.parse_args()
    from bisector import demo

    meta = demo.create(args.demo_dir)
    tree = Path(str(meta["tree"]))
    results = HERE / "results"
    if args.again:
        os.environ["BISECTOR_CACHE"] = str(results / "cache")
        os.environ["BISECTOR_RUNS"] = str(results / "runs")
        again = bisect_once(tree, Store(results / "bench.db"), "identical bisection (--again)")
        print(f"identical bisection: {again['builds']} builds (goal 0), wall "
              f"{again['wall']:.0f}s, culprit {str(again['culprit'])[:12]}")
        return 0 if again["builds"] == 0 else 1
    cache = fresh_cache(results / "cache")
    os.environ["BISECTOR_CACHE"] = str(cache)
    os.environ["BISECTOR_RUNS"] = str(results / "runs")
    shutil.rmtree(results / "runs", ignore_errors=True)
    store = Store(results / "bench.db")

    n = int(proc.run(["git", "-C", tree, "rev-list", "--count", "v6.1.192..main"]).stdout)
    first = bisect_once(tree, store, "bisection #1 (cold caches)")
    second = bisect_once(tree, store, "bisection #2 (identical)")

    baseline = first["build_times"][0] if first["build_times"] else None  # type: ignore[index]
    clean = None
    if args.clean_baseline:
        from bisector.kernel.gitbuild import GitBuildSource

        src = GitBuildSource(tree)
        config = src.make_config(src.rev_parse("main"))
        print("baseline: clean build of the same config (no ccache) …", flush=True)
        clean = clean_build(src.worktree, config, results / "clean-build")
        print(f"clean build without ccache: {clean:.1f}s", flush=True)

    incr = first["build_times"][1:]  # type: ignore[index]
    expected = math.ceil(math.log2(n)) + 1
    covered = first["build"] + first["boot"] + first["test"]  # type: ignore[operator]
    overhead = first["wall"] - covered  # type: ignore[operator]
    print()
    print(f"demo tree: {n} commits after v6.1.192; culprit named: "
          f"{str(first['culprit'])[:12]} (injected {str(meta['culprit_sha'])[:12]})")
    print(f"builds, bisection #1: {first['builds']}  vs ceil(log2 {n}) + 1 = {expected} "
          f"(steps {first['steps']}, incl. 2 endpoint checks and skips)")
    if baseline and incr:
        med = statistics.median(incr)
        print(f"per-step build: median {med:.1f}s of {len(incr)} incremental builds vs the "
              f"clean first build {baseline:.1f}s = {med / baseline:.2f}x (goal <= 0.20x)")
    w = float(first["wall"])  # type: ignore[arg-type]
    print(f"bisection #1 wall {w:.0f}s: build {first['build']:.0f}s "
          f"({100 * float(first['build']) / w:.0f}%), boot {first['boot']:.0f}s "  # type: ignore[arg-type]
          f"({100 * float(first['boot']) / w:.0f}%), test {first['test']:.0f}s "  # type: ignore[arg-type]
          f"({100 * float(first['test']) / w:.0f}%), overhead {overhead:.0f}s "  # type: ignore[arg-type]
          f"({100 * overhead / w:.1f}%, goal <= 5%)")
    print(f"bisection #2: {second['builds']} builds (goal 0), wall {second['wall']:.0f}s, "
          f"culprit {str(second['culprit'])[:12]}")
    (results / "bisect.json").write_text(json.dumps(
        {"n": n, "first": first, "second": second, "baseline_first_build_s": baseline,
         "clean_build_no_ccache_s": clean},
        indent=2))
    ok = first["culprit"] == meta["culprit_sha"] and second["builds"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
