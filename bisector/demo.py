"""The embedded demo: a kernel git tree with a known culprit to bisect.

``python -m bisector.demo create`` builds, from Debian's ``linux-source-6.1``
(6.1.192, which carries upstream fix 227adfb2b1df for seed 000):

* a git repository whose first commit is tagged ``v6.1.192``;
* a series of further commits that compile and change something real but
  harmless in files the demo config builds (a ``__used`` string in a .c
  file each);
* at a seeded random position, the culprit: it reverts 227adfb2b1df in
  ``net/ipv4/ip_tunnel.c``, bringing seed 000's bug back;
* one commit that does not build and one whose kernel panics at boot (each
  fixed by the next commit), away from the culprit.  Their positions are
  chosen by simulating ``git bisect`` on a scratch repository of the same
  shape, so the real bisection is known to visit (and skip) both.

``python -m bisector.demo check REPORT_JSON`` checks that a bisection named
the injected culprit.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from . import git, proc, resources
from .errors import BisectorError, UserError
from .outcomes import Stage, Step
from .paths import cache_dir
from .progress import note
from .search import Bisector, GitBisection
from .verdict import Verdict

SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
#: bump when the generated series changes, so cached demo trees are regenerated
DEMO_VERSION = 5
BASE_TAG = "v6.1.192"
#: the culprit: upstream fix 227adfb2b1df reverted (the same patch the seed-000 proof uses),
#: shipped in kernels/patches/ (see bisector.resources)
CULPRIT_PATCH = "gre-ecn-mac-corruption.patch"
#: .c files the demo config compiles, for the harmless changes
FILES = ("net/core/dev.c", "net/ipv4/route.c", "net/ipv4/af_inet.c", "net/ipv4/ip_output.c",
         "net/core/skbuff.c", "net/ipv4/gre_demux.c", "fs/ext4/super.c", "kernel/fork.c",
         "net/ipv6/addrconf.c", "drivers/net/veth.c")
GIT_ENV = {"GIT_AUTHOR_NAME": "Demo Developer", "GIT_AUTHOR_EMAIL": "demo@bisector.invalid",
           "GIT_COMMITTER_NAME": "Demo Developer",
           "GIT_COMMITTER_EMAIL": "demo@bisector.invalid"}


@dataclass
class Plan:
    total: int
    culprit: int
    broken: int
    noboot: int
    seed: int


def _git(repo: Path, *args: str, date: int | None = None) -> str:
    env = dict(GIT_ENV)
    if date is not None:
        stamp = f"@{1767225600 + date * 3600} +0000"
        env.update({"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
    return git.out(repo, *args, env=env, timeout=1800)


def simulate(total: int, culprit: int, skips: set[int]) -> tuple[list[int], int | None]:
    """Indices ``git bisect`` tests on a linear history of this shape, and its answer."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        _git(repo, "init", "-q", "-b", "main")
        shas = []
        for i in range(total + 1):
            _git(repo, "commit", "-q", "--allow-empty", "-m", f"c{i}", date=i)
            shas.append(_git(repo, "rev-parse", "HEAD"))
        tested: list[int] = []

        def tester(stage: Stage, cand: str) -> Step:
            i = shas.index(cand)
            tested.append(i)
            if i in skips:
                return Step(stage, cand, Verdict.SKIP, "sim")
            return Step(stage, cand, Verdict.BAD if i >= culprit else Verdict.GOOD, "sim")

        gb = GitBisection(repo, [shas[0]], shas[-1])
        gb.start()
        res = Bisector(tester).run(Stage.GIT, gb)
        return tested, (shas.index(res.first) if res.first else None)


def plan(seed: int, total: int = 36) -> Plan:
    rng = random.Random(seed)
    for _ in range(500):
        culprit = rng.randint(4, total - 2)
        path, _ = simulate(total, culprit, set())
        broken = path[0]
        if abs(broken - culprit) < 3:
            continue
        path2, _ = simulate(total, culprit, {broken})
        options = [i for i in path2[2:] if abs(i - culprit) >= 3 and abs(i - broken) >= 2
                   and i < total]
        if not options:
            continue
        noboot = options[0]
        path3, found = simulate(total, culprit, {broken, noboot})
        if found == culprit and broken in path3 and noboot in path3:
            return Plan(total, culprit, broken, noboot, seed)
    raise BisectorError(f"no demo layout found for seed {seed}")


def _subsystem(path: str) -> str:
    """net/ipv4/route.c → 'net: ipv4', kernel/fork.c → 'fork', drivers/net/veth.c → 'veth'."""
    parts = path.split("/")
    if parts[0] in ("net", "fs"):
        return f"{parts[0]}: {parts[1]}" if parts[0] == "net" else parts[1]
    return Path(path).stem


def _append(path: Path, text: str) -> None:
    with path.open("a") as fh:
        fh.write(text)


def _import_source(root: Path, tree: Path) -> None:
    """Unpack linux-source-6.1 and commit it as ``v6.1.192`` (the slow part, done once)."""
    if not SOURCE_TARBALL.exists():
        raise UserError(f"{SOURCE_TARBALL} not found: apt-get install linux-source-6.1")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    note(f"unpacking {SOURCE_TARBALL}")
    proc.run(["tar", "-xf", SOURCE_TARBALL, "-C", root], timeout=1800)
    (root / "linux-source-6.1").rename(tree)
    # Debian's packaging block ignores every top-level entry ('/*'): drop it, or git
    # would commit nothing.
    gi = tree / ".gitignore"
    text = gi.read_text()
    cut = text.find("# Debian packaging")
    if cut >= 0:
        gi.write_text(text[:cut])
    note("creating the git repository (this commits ~75k files)")
    _git(tree, "init", "-q", "-b", "main")
    _git(tree, "config", "gc.auto", "0")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "Linux 6.1.192 (from Debian's linux-source-6.1)", date=0)
    _git(tree, "tag", BASE_TAG)


def create(root: Path, seed: int = 1, total: int = 36) -> dict[str, object]:
    """Create (or reuse) the demo tree under ``root``; returns its description."""
    meta_path = root / "demo.json"
    tree = root / "linux"
    if meta_path.exists() and (tree / ".git").exists():
        meta = json.loads(meta_path.read_text())
        if (meta.get("seed"), meta.get("total"), meta.get("version")) == (seed, total,
                                                                         DEMO_VERSION):
            note(f"demo tree ready (reused): {tree}")
            return dict(meta)
    p = plan(seed, total)
    note(f"demo layout (seed {seed}): {total} commits, culprit #{p.culprit}, "
         f"non-building #{p.broken}, non-booting #{p.noboot}")
    if (tree / ".git").exists() and _git(tree, "tag", "--list", BASE_TAG) == BASE_TAG:
        note(f"reusing the {BASE_TAG} import in {tree}; regenerating the series")
        _git(tree, "checkout", "-q", "-B", "main", BASE_TAG)
        _git(tree, "reset", "-q", "--hard", BASE_TAG)
        _git(tree, "clean", "-q", "-fdx")
    else:
        _import_source(root, tree)
    commits: dict[str, str] = {}
    pending_fix: tuple[Path, str] | None = None
    for i in range(1, total + 1):
        if i == p.culprit:
            try:
                git.git(tree, "apply", resources.patch(CULPRIT_PATCH), timeout=60)
            except proc.CommandError as exc:
                raise BisectorError(f"{resources.patch(CULPRIT_PATCH)} does not apply: "
                                    f"{exc.tail(1)}") from exc
            msg = ("ip_tunnel: reset the network header before ECN decapsulation\n\n"
                   "Demo culprit injected by bisector: this reverts upstream commit\n"
                   "227adfb2b1df, so ip_tunnel_rcv() points the network header at the\n"
                   "inner Ethernet header of L2 GRE frames again and IP_ECN_decapsulate()\n"
                   "rewrites the inner destination MAC (seed 000, introduced upstream by\n"
                   "b723748750ec).\n")
        elif i == p.broken:
            f = tree / "net/ipv4/af_inet.c"
            bad = f"\nstatic int bisector_demo_broken_{i} = ;\n"
            _append(f, bad)
            pending_fix = (f, bad)
            msg = f"net: ipv4: demo change {i} (does not compile)\n"
        elif i == p.noboot:
            f = tree / "init/main.c"
            src = f.read_text()
            anchor = "\tdo_sysctl_args();\n\n\tif (ramdisk_execute_command) {"
            if anchor not in src:
                raise BisectorError("init/main.c: kernel_init() anchor not found")
            panic = "\tpanic(\"bisector demo: this kernel cannot boot\");\n"
            f.write_text(src.replace(anchor, anchor.replace(
                "\tdo_sysctl_args();\n", "\tdo_sysctl_args();\n" + panic), 1))
            pending_fix = (f, panic)
            msg = f"init: demo change {i} (panics at boot)\n"
        else:
            f = tree / FILES[i % len(FILES)]
            _append(f, f"\n/* bisector demo change {i} */\nstatic const char "
                       f"bisector_demo_{i}[] __used = \"bisector demo change {i}\";\n")
            msg = f"{_subsystem(FILES[i % len(FILES)])}: demo change {i}\n"
            if pending_fix is not None:
                fixed, bad_text = pending_fix
                fixed.write_text(fixed.read_text().replace(bad_text, "", 1))
                msg += f"\nAlso undo the previous commit's breakage in {fixed.relative_to(tree)}.\n"
                pending_fix = None
        _git(tree, "add", "-A")
        _git(tree, "commit", "-q", "-m", msg, date=i)
        commits[str(i)] = _git(tree, "rev-parse", "HEAD")
    meta = {**asdict(p), "version": DEMO_VERSION, "tree": str(tree), "base": BASE_TAG,
            "culprit_sha": commits[str(p.culprit)], "broken_sha": commits[str(p.broken)],
            "noboot_sha": commits[str(p.noboot)], "tip": commits[str(total)]}
    verify_layout(tree, meta)
    meta_path.write_text(json.dumps(meta, indent=2))
    note(f"demo tree ready: {tree} ({total} commits after {BASE_TAG}; "
         f"culprit {str(meta['culprit_sha'])[:12]})")
    return meta


def verify_layout(tree: Path, meta: dict[str, object]) -> None:
    """Bisect the real tree with a scripted oracle: the culprit must be found and both
    skip commits visited (the simulation's promise, checked on the real commit ids)."""
    order = _git(tree, "rev-list", "--reverse", f"{BASE_TAG}..main").split()
    culprit = order.index(str(meta["culprit_sha"]))
    skips = {str(meta["broken_sha"]), str(meta["noboot_sha"])}
    tested: list[str] = []

    def tester(stage: Stage, cand: str) -> Step:
        tested.append(cand)
        if cand in skips:
            return Step(stage, cand, Verdict.SKIP, "layout check")
        return Step(stage, cand, Verdict.BAD if order.index(cand) >= culprit else Verdict.GOOD,
                    "")

    gb = GitBisection(tree, [_git(tree, "rev-parse", BASE_TAG)], order[-1])
    gb.start()
    try:
        res = Bisector(tester).run(Stage.GIT, gb)
    finally:
        gb.reset()
    if res.first != meta["culprit_sha"] or not skips <= set(tested):
        raise BisectorError(f"demo layout check failed: found {res.first}, tested {tested}")
    meta["expected_steps"] = len(tested)


def check(root: Path, report: Path) -> int:
    meta = json.loads((root / "demo.json").read_text())
    data = json.loads(report.read_text())
    culprit = (data.get("result") or {}).get("culprit", {}).get("sha")
    if culprit == meta["culprit_sha"]:
        print(f"demo: PASS — bisector named the injected commit {culprit[:12]}")
        return 0
    print(f"demo: FAIL — expected {meta['culprit_sha'][:12]}, bisector said {culprit}")
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bisector.demo")
    ap.add_argument("--dir", type=Path, default=cache_dir() / "demo")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--commits", type=int, default=36)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("create")
    c = sub.add_parser("check")
    c.add_argument("report", type=Path)
    sub.add_parser("plan")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "create":
            meta = create(args.dir, args.seed, args.commits)
            print(meta["tree"])
            return 0
        if args.cmd == "plan":
            print(json.dumps(asdict(plan(args.seed, args.commits))))
            return 0
        return check(args.dir, args.report)
    except BisectorError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
