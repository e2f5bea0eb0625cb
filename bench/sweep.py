"""make bench-sweep: what a nightly sweep costs, measured in one run on this machine.

1. baseline: the shell loop the README offered before ``bisector sweep`` existed —
   ``bisector run --json`` once per cell, one process each — over the same
   2 kernels × 2 reproducers (the two newest Debian 6.1 kernels × seeds 000, 004);
2. the 2 × 2 sweep (``bisector sweep``), then the same sweep again (all kernels
   cached, the second night): wall time, and the share of it that is neither a
   boot nor the reproducer (goal <= 5 %);
3. the regression case on the demo tree (``make demo`` creates it): a git line
   whose branch tip is ``v6.1.192`` one night (GOOD) and the demo's ``main`` the
   next (BAD): the time from the end of the second sweep's cells to a verified
   culprit (the auto-bisection, culprit verification included), and whether it
   is the demo's injected commit.

Everything goes through the real CLI in subprocesses; the results, the state
(SQLite store) and the run folders live under bench/results/sweep (deleted
first), the kernel and image caches are the user's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REPROS = [REPO / "reproducers" / "gre-ecn-mac-corruption.yaml",
          REPO / "reproducers" / "ipmr-hairpin-ttl.yaml"]
BRANCH = "bisector-bench-sweep"


def cli(*args: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "bisector.cli", *args], env=env, text=True,
                       capture_output=True, stdin=subprocess.DEVNULL, check=False)
    return time.monotonic() - t0, p


def newest_two(env: dict[str, str]) -> list[str]:
    _, p = cli("kernels", "list", "debian", env=env)
    specs = [ln.split()[0] for ln in p.stdout.splitlines() if ln.startswith("debian:6.1.0-")]
    return specs[-2:]


def config(path: Path, results: Path, kernels: str, repros: list[Path]) -> Path:
    path.write_text(f"name: {path.stem}\nresults: {results}\nkernels:\n{kernels}"
                    "reproducers:\n" + "".join(f"  - glob: {r}\n" for r in repros)
                    + "concurrency: 1\n")
    return path


def night(cfg: Path, env: dict[str, str]) -> tuple[float, dict[str, object], int]:
    """One sweep; its wall time, its report.json, its exit code."""
    wall, p = cli("sweep", "--config", str(cfg), env=env)
    if p.returncode not in (0, 1):
        sys.exit(f"sweep failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}")
    page = next(ln.split("report: ", 1)[1] for ln in p.stdout.splitlines()
                if ln.startswith("report: "))
    return wall, json.loads((Path(page).parent / "report.json").read_text()), p.returncode


def busy(report: dict[str, object]) -> float:
    cells = report["cells"]
    assert isinstance(cells, list)
    return sum(float(c["boot_s"]) + float(c["test_s"]) for c in cells)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo-dir", type=Path, default=Path.home() / ".cache/bisector/demo")
    ap.add_argument("--skip-regression", action="store_true")
    args = ap.parse_args()
    out = HERE / "results" / "sweep"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, BISECTOR_RUNS=str(out / "state" / "runs"), PYTHONUNBUFFERED="1")
    kernels = newest_two(env)
    print(f"kernels: {', '.join(kernels)}; reproducers: "
          f"{', '.join(r.stem for r in REPROS)}", flush=True)
    # prefetch (so the baseline and the first sweep start from the same warm cache)
    cli("kernels", "fetch", *kernels, env=env)

    t0 = time.monotonic()
    for k in kernels:
        for r in REPROS:
            cli("run", "--kernel", k, "--repro", str(r), "--json",
                "--run-dir", str(out / "loop"), env=env)
    loop = time.monotonic() - t0
    print(f"baseline shell loop (4 x bisector run): {loop:.1f}s", flush=True)

    cfg = config(out / "bench-2x2.yaml", out / "results",
                 "  debian-6.1:\n    debian: {series: '6.1', newest: 2}\n", REPROS)
    w1, r1, _ = night(cfg, env)
    w2, r2, _ = night(cfg, env)
    rows = [("baseline: 4 x bisector run", loop, None, 1.0),
            ("sweep, night 1", w1, 1 - busy(r1) / w1, w1 / loop),
            ("sweep, night 2 (cached)", w2, 1 - busy(r2) / w2, w2 / loop)]
    print(f"\n{'what':34} {'wall s':>8} {'not boot/test':>14} {'vs baseline':>12}")
    for name, wall, share, ratio in rows:
        s = f"{share * 100:.1f} %" if share is not None else "-"
        print(f"{name:34} {wall:8.1f} {s:>14} {ratio:11.2f}x")
    worst = max(s for _, _, s, _ in rows if s is not None)
    print(f"goal: not boot/test <= 5 % — {'PASS' if worst <= 0.05 else 'FAIL'} "
          f"({worst * 100:.1f} %)")

    if args.skip_regression:
        return 0
    meta = json.loads((args.demo_dir / "demo.json").read_text())
    tree = Path(meta["tree"])
    git = ["git", "-C", str(tree)]
    subprocess.run([*git, "branch", "-f", BRANCH, meta["base"]], check=True)
    try:
        gcfg = config(out / "bench-git.yaml", out / "results-git",
                      f"  demo:\n    git: {{tree: {tree}, branches: [{BRANCH}]}}\n", REPROS[:1])
        wa, _, _ = night(gcfg, env)
        subprocess.run([*git, "branch", "-f", BRANCH, "main"], check=True)
        wb, rb, code = night(gcfg, env)
    finally:
        subprocess.run([*git, "branch", "-D", BRANCH], check=False, capture_output=True)
    regs = rb["regressions"]
    assert isinstance(regs, list)
    if not regs:
        print(f"regression case: FAIL — no regression reported (exit {code})")
        return 1
    reg = regs[0]
    right = reg.get("culprit") == meta["culprit_sha"]
    print(f"\nregression case (git line on the demo tree): night A {wa:.1f}s, night B "
          f"{wb:.1f}s (exit {code})")
    print(f"  end of cells → verified culprit: {reg['bisect_s']:.1f}s; culprit "
          f"{str(reg.get('culprit'))[:12]} ({reg['status']}) — "
          + ("the injected commit" if right
             else f"NOT the injected commit {meta['culprit_sha'][:12]}"))
    print(f"  campaign report: {reg.get('campaign_report')}")
    return 0 if right and worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
