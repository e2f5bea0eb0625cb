"""``bisector …``: subcommands and the one place errors become exit codes.

Exit codes
----------
``run`` acts as a ``git bisect run`` script: 0 GOOD, 1 BAD, 125 SKIP, and
every error ≥ 128 (129 user error — a bad option or file included —, 130
interrupted, 131 infrastructure error or a bug in bisector), so that a broken
setup aborts a bisection instead of marking commits bad.
Other subcommands: 0 success, 1 a check failed (e.g. ``repro validate``; for
``bisect``: no single commit named), 2 user error (usage included), 3
infrastructure error or a bug in bisector, 130 interrupted.

A bug (any exception that is not a :class:`BisectorError`) is caught last:
its traceback goes to a file under the run's log directory (or the runs
directory), named in the one-line message.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .errors import BisectorError, Busy, InfraError, Untestable, UserError
from .outcomes import CampaignResult, Stage, Step
from .paths import os_error
from .search import Bisection, Handler
from .summary import short

if TYPE_CHECKING:
    from .campaign import BisectArgs
    from .runner import RunOptions

log = logging.getLogger("bisector")

EXIT_USER, EXIT_INFRA, EXIT_INTERRUPTED = 2, 3, 130
RUN_EXIT_USER, RUN_EXIT_INFRA = 129, 131


class UsageError(UserError):
    """A bad command line (argparse's complaint), mapped like any user error."""


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, which ``git bisect run`` reads as BAD:
    raise instead, so :func:`main` gives the command's user-error code."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


#: where the evidence of the command in progress goes (a crash's traceback too)
_evidence_dir: Path | None = None


def _cmd_run(args: argparse.Namespace) -> int:
    global _evidence_dir
    from . import reproducer, runner
    from .kernel import KernelResolver
    from .paths import new_run_dir

    repro = reproducer.load(Path(args.repro), reproducer.parse_overrides(args.param))
    run_dir = new_run_dir(args.kernel, repro.spec.name, Path(args.run_dir) if args.run_dir
                          else None)
    _evidence_dir = run_dir
    print(f"run directory: {run_dir}", file=sys.stderr)
    kernels = KernelResolver(Path(args.tree) if args.tree else None,
                             required=repro.spec.requires.config,
                             fragments=[Path(f) for f in args.config_fragment])
    try:
        if args.scheduler:
            from .distributed import run_remote

            res = run_remote(args.scheduler, args.kernel, str(Path(args.repro).resolve()),
                             reproducer.parse_overrides(args.param), run_dir.resolve(),
                             _run_options(args), str(Path(args.tree).resolve())
                             if args.tree else None,
                             [str(Path(f).resolve()) for f in args.config_fragment])
        else:
            res = runner.run(args.kernel, repro, run_dir, _run_options(args), kernels=kernels)
    except BisectorError as exc:
        exc.log_path = exc.log_path or run_dir
        raise
    assert res.verdict is not None
    phases = "  ".join(f"{k} {v:.1f}s" for k, v in res.phases.items())
    if args.json:
        print(json.dumps(res.to_json()))  # one line: `--json >> file.jsonl` appends a record
    else:
        print(f"{res.verdict.name}: {res.reason}")
        for n in res.notes:
            print(f"note: {n}")
        print(f"kernel: {res.kernel} ({res.release or '?'})  accel: {res.accel or '-'}")
        print(f"phases: {phases}")
        print(f"logs:   {run_dir}")
    return res.verdict.exit_code


def _run_options(args: argparse.Namespace) -> RunOptions:
    from .runner import RunOptions

    return RunOptions(accel=args.accel, boot_timeout=args.boot_timeout, memory_mb=args.memory,
                      cpus=args.cpus, append=getattr(args, "append", ""), image=args.image)


class CLIHandler(Handler):
    """Progress lines for a terminal or a log (one line per event)."""

    def stage_started(self, stage: Stage, bisection: Bisection) -> None:
        print(f"[bisector] {stage.value} stage: ~{bisection.steps_left()} steps",
              file=sys.stderr, flush=True)

    def step_started(self, stage: Stage, index: int, candidate: str, left: int) -> None:
        what = short(candidate)
        tail = f" (~{left} step{'s' if left != 1 else ''} left)" if left else ""
        print(f"[bisector] {stage.value} #{index or '-'}: testing {what}{tail}",
              file=sys.stderr, flush=True)

    def step_finished(self, stage: Stage, index: int, o: Step) -> None:
        what = short(o.candidate)
        cached = " (cached)" if o.cached else ""
        print(f"[bisector] {stage.value} #{index or '-'}: {what} {o.verdict.name}  build "
              f"{o.build_s:.0f}s{cached} boot {o.boot_s:.0f}s test {o.test_s:.0f}s — "
              f"{o.reason[:140]}", file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        print(f"[bisector] {text}", file=sys.stderr, flush=True)


def _print_campaign(cr: CampaignResult, report_dir: Path | None) -> int:
    from . import report, summary
    from .outcomes import CampaignStatus
    from .store import Store

    st = Store()
    c = st.get(cr.campaign_id)
    assert c is not None
    steps = st.steps(c.id)
    # the answer first: a report that cannot be written must not hide it
    print(summary.headline(cr), flush=True)
    for line in summary.mail_lines(cr):
        print(f"  {line}")
    if cr.verification is not None:
        print(f"  verification: {cr.verification.summary}")
        for flag in cr.verification.flags:
            print(f"    - {flag}")
    meaning = summary.upstream_range(cr)
    if meaning and cr.culprit is None:
        print(f"  {meaning}")
    cont = summary.continue_command(cr, str(c.args.get("repro", "FILE")))
    if cont and cr.status is CampaignStatus.FOUND:
        print(f"  continue upstream: {cont}")
    real = [s for s in steps if not s.replayed]
    print(f"steps: {len(real)}  builds: {sum(1 for s in real if s.built)}", flush=True)
    target = report_dir or c.dir / "report"
    try:
        out = report.write(c, steps, cr, target)
    except OSError as exc:
        raise os_error(exc, f"writing the report of campaign {c.id} (its result is "
                            f"stored; `bisector resume {c.id}` will not redo it)") from exc
    print(f"report: {out['md']}")
    return 0 if cr.status is CampaignStatus.FOUND else 1


def _bisect_args(args: argparse.Namespace) -> BisectArgs:
    from .campaign import BisectArgs
    from .reproducer import parse_overrides

    return BisectArgs(repro=args.repro, good=args.good, bad=args.bad, tree=args.tree,
                      params=parse_overrides(args.param), find_fix=args.find_fix,
                      term_old=args.term_old, term_new=args.term_new,
                      fragments=args.config_fragment, verify=not args.no_verify,
                      replay=args.replay, accel=args.accel, boot_timeout=args.boot_timeout,
                      memory_mb=args.memory, cpus=args.cpus, report_dir=args.report_dir,
                      across_series=args.across_series,
                      verify_culprit=not args.no_verify_culprit, strategy=args.strategy,
                      confidence=args.confidence, max_runs=args.max_runs,
                      max_builds=args.max_builds)


def _cmd_bisect(args: argparse.Namespace) -> int:
    from .campaign import run_campaign

    ba = _bisect_args(args)
    pool = None
    if args.scheduler:
        from .distributed import step_pool

        r = ba.resolved()
        pool = step_pool(args.scheduler, r.repro, r.params, _run_options(args), r.tree,
                         r.fragments)
        print(f"[bisector] Dask scheduler {args.scheduler}: {pool.width} worker(s), "
              f"{pool.width} commit(s) per round", file=sys.stderr)
    cr = run_campaign(ba, CLIHandler(), pool=pool)
    return _print_campaign(cr, Path(args.report_dir) if args.report_dir else None)


def _cmd_resume(args: argparse.Namespace) -> int:
    from .campaign import BisectArgs, run_campaign
    from .outcomes import CampaignStatus
    from .store import Store

    st = Store()
    c = st.get(args.campaign) if args.campaign else st.find_unfinished()
    if c is None:
        raise UserError("no unfinished campaign to resume" if not args.campaign
                        else f"no campaign {args.campaign}")
    if c.status is not CampaignStatus.RUNNING:
        raise UserError(f"campaign {c.id} already ended ({c.status.value}); "
                        f"see {c.dir}/report")
    ba = BisectArgs(**c.args)
    cr = run_campaign(ba, CLIHandler(), st)
    return _print_campaign(cr, Path(ba.report_dir) if ba.report_dir else None)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep.command import SweepOptions
    from .sweep.command import main as sweep_main

    return sweep_main(SweepOptions(config=Path(args.config), bisect=not args.no_bisect,
                                   notify=not args.no_notify, scheduler=args.scheduler),
                      CLIHandler())


def _cmd_repro_prove(args: argparse.Namespace) -> int:
    from . import reproducer
    from .progress import note
    from .prove import prove

    repro = reproducer.load(Path(args.file), reproducer.parse_overrides(args.param))
    proof, out = prove(repro, args.good, args.bad, runs=args.runs,
                       tree=Path(args.tree) if args.tree else None,
                       fragments=[Path(f) for f in args.config_fragment],
                       opts=_run_options(args),
                       parent=Path(args.run_dir) if args.run_dir else None, say=note)
    print(proof.line())
    print(f"evidence: {out}")
    return 0 if proof.passed else 1


def _cmd_repro_validate(args: argparse.Namespace) -> int:
    from . import reproducer

    failed = 0
    for f in args.files:
        try:
            repro = reproducer.load(Path(f))
            print(f"ok: {f} ({repro.spec.name})")
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _cmd_kernels_list(args: argparse.Namespace) -> int:
    from . import kernel
    from .kernel.ubuntu import UbuntuMainlineSource

    mainline = None
    if args.source == UbuntuMainlineSource.prefix:
        src = kernel.source_for(args.source)
        mainline = src if isinstance(src, UbuntuMainlineSource) else None
    given = [o for o, v in (("VERSION", args.selector), ("--all", args.all),
                            ("--rc/--no-rc", args.rc is not None), ("--flavour", args.flavour),
                            ("--arch", args.arch)) if v]
    if mainline is not None:
        # the mainline tools' listing: build status per version, failed ones hidden
        mainline.choose(args.flavour, args.arch)
        entries = mainline.builds(args.selector, rc=args.rc, all_builds=args.all)
    elif given:
        raise UserError(f"kernels list {args.source}: {', '.join(given)} only apply to "
                        "ubuntu-mainline")
    elif args.source == kernel.resolver.GIT_PREFIX:
        entries = kernel.KernelResolver(Path(args.tree) if args.tree else None
                                        ).git_source.available()
    else:
        entries = kernel.listing(args.source)
    if not entries:
        print(f"{args.source}: nothing to list " + (
            "(no usable build; --all shows failed ones)" if mainline is not None
            else "(this source takes explicit paths)"))
    for e in entries:
        print(f"{e.spec:40} {e.version:28} {e.note}")
    return 0


def _cmd_kernels_fetch(args: argparse.Namespace) -> int:
    from . import kernel
    from .kernel.bootfiles import boot_files

    kernels = kernel.KernelResolver(Path(args.tree) if args.tree else None)
    for spec in args.specs:
        art = kernels.resolve(spec)
        files = boot_files(art)
        print(json.dumps({"spec": art.spec, "release": art.release, "image": str(art.image),
                          "modules": str(art.modules) if art.modules else None,
                          "initrd": str(files.initrd) if files.initrd else None,
                          "upstream": art.upstream, "meta": art.meta}, indent=2))
    return 0


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def _cmd_cache_du(args: argparse.Namespace) -> int:
    from . import cache
    from .paths import cache_dir

    parts = cache.usage()
    print(f"cache: {cache_dir()}")
    for name, size in sorted(parts.items()):
        print(f"{_mib(size):>12}  {name}")
    print(f"{_mib(sum(parts.values())):>12}  total")
    return 0


def _cmd_cache_prune(args: argparse.Namespace) -> int:
    from . import cache
    from .store import Store

    if args.keep is None and args.older_than is None:
        raise UserError("cache prune: give --keep N and/or --older-than AGE (e.g. 30d)")
    since = Store().oldest_running_since()
    chosen = cache.select(cache.prunable(), keep=args.keep, older_than=args.older_than,
                          protect_since=since)
    removed = chosen if args.dry_run else cache.remove(chosen)
    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.path} ({_mib(e.size)})")
    kept = " (kept everything used since the oldest resumable campaign started)" \
        if since is not None else ""
    print(f"{verb} {len(removed)} item(s), {_mib(sum(e.size for e in removed))}{kept}")
    return 0


def _age(text: str) -> float:
    from .cache import parse_age

    try:
        return parse_age(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give an age like 30d, 12h or 90m") \
            from None


def _cmd_image_build(args: argparse.Namespace) -> int:
    from .image import ensure_image

    img = ensure_image(args.name, rebuild=args.rebuild)
    print(img.root)
    return 0


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (``-5`` would SKIP every kernel, ``nan``
    would never time out)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0 or value > 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds between 0 and 86400")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.5 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a confidence in [0.5, 1)")
    return value


def _bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not between {lo} and {hi}")
        return value

    parse.__name__ = "integer"
    return parse


#: words git bisect uses itself and so refuses as terms
_GIT_BISECT_WORDS = {"help", "start", "skip", "next", "reset", "visualize", "view", "replay",
                     "log", "run", "terms"}


def _term(text: str) -> str:
    """A git bisect term git will accept (checked here: git's refusal would be exit 3)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,39}", text) or text in _GIT_BISECT_WORDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} cannot be a bisect term (letters, digits, - and _; not one of git "
            f"bisect's own words: {', '.join(sorted(_GIT_BISECT_WORDS))})")
    return text


def _common(p: argparse.ArgumentParser) -> None:
    """Options every kernel-testing command takes (run, repro prove, bisect)."""
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a reproducer parameter (repeatable)")
    p.add_argument("--config-fragment", action="append", default=[], metavar="FILE",
                   help="extra kernel config fragment for git builds (repeatable)")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    p.add_argument("--boot-timeout", type=_seconds, default=180.0, metavar="SECONDS")
    p.add_argument("--memory", type=_bounded_int(128, 1 << 20), default=1024, metavar="MIB",
                   help="guest memory")
    p.add_argument("--cpus", type=_bounded_int(1, 256), default=2, help="guest CPUs")
    p.add_argument("--image", default="bookworm", help="guest image recipe (vm-images/NAME)")


def _address(text: str) -> str:
    if not re.match(r"^(tcp|tls|ws|wss)://[^/\s]+:\d+$", text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected an address like "
                                         "tcp://HOST:8786")
    return text


def _scheduler(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", metavar="tcp://HOST:8786", type=_address,
                   help="run the work on a Dask cluster (workers: dask worker ADDRESS "
                        "--nthreads 1 --resources qemu=1); default: in this process")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="bisector", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"bisector {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="boot one kernel and run a reproducer in it "
                                   "(exit 0 good, 1 bad, 125 skip: a git bisect run script)")
    r.add_argument("--kernel", required=True,
                   help="debian:6.1.0-56, ubuntu-mainline:v5.7.1, local:/path/linux-image.deb")
    r.add_argument("--repro", required=True, help="reproducer YAML file")
    _common(r)
    r.add_argument("--append", default="", help="extra kernel command line")
    r.add_argument("--run-dir", help="parent directory for this run's logs")
    r.add_argument("--tree", help="kernel git checkout for --kernel git:REV")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    _scheduler(r)
    r.set_defaults(func=_cmd_run)

    rp = sub.add_parser("repro", help="reproducer files")
    rsub = rp.add_subparsers(dest="repro_command", required=True)
    v = rsub.add_parser("validate", help="check reproducer files against the schema")
    v.add_argument("files", nargs="+")
    v.set_defaults(func=_cmd_repro_validate)
    pr = rsub.add_parser("prove", help="show BAD on a buggy kernel and GOOD on a fixed one")
    pr.add_argument("file")
    pr.add_argument("--good", required=True, help="kernel that carries the fix")
    pr.add_argument("--bad", required=True,
                    help="kernel with the bug (e.g. git:v6.1.192+kernels/patches/X.patch)")
    pr.add_argument("--runs", type=int, default=3, help="boots per kernel (default 3)")
    pr.add_argument("--tree", help="kernel git checkout for git: kernels")
    _common(pr)
    pr.add_argument("--run-dir", help="parent directory for the evidence")
    pr.set_defaults(func=_cmd_repro_prove)

    b = sub.add_parser("bisect", help="find the commit (or prebuilt kernel) that introduced "
                                      "or fixed the bug")
    b.add_argument("--repro", required=True, help="reproducer YAML file")
    b.add_argument("--good", required=True, action="append",
                   help="git rev, or debian:… / ubuntu-mainline:… (repeatable for git revs, "
                        "as git bisect takes several good revisions)")
    b.add_argument("--bad", required=True, action="append",
                   help="git rev, or debian:… / ubuntu-mainline:… (with --find-fix the old "
                        "end: repeatable)")
    b.add_argument("--tree", help="kernel git checkout (required for git revisions; with "
                                  "prebuilt endpoints it adds the upstream git stage)")
    b.add_argument("--find-fix", action="store_true",
                   help="look for the first GOOD commit (the fix) instead of the first BAD")
    b.add_argument("--term-old", type=_term, help="custom git bisect term for the old state")
    b.add_argument("--term-new", type=_term, help="custom git bisect term for the new state")
    _common(b)
    b.add_argument("--no-verify", action="store_true",
                   help="do not test the endpoints before bisecting")
    b.add_argument("--no-verify-culprit", action="store_true",
                   help="do not re-test the culprit, its parents and its revert afterwards")
    b.add_argument("--strategy", choices=["auto", "plain", "bayes"], default="auto",
                   help="plain: git bisect, one verdict per commit; bayes: a noisy search "
                        "for flaky reproducers (auto: bayes when the reproducer declares "
                        "verdict.trigger_rate)")
    b.add_argument("--confidence", type=_probability, default=0.95,
                   help="bayes: stop when the top hypothesis reaches this (default 0.95)")
    b.add_argument("--max-runs", type=_bounded_int(1, 100000), help="bayes: run budget")
    b.add_argument("--max-builds", type=_bounded_int(1, 100000), help="bayes: build budget")
    b.add_argument("--replay", metavar="LOG", help="seed the bisection with a git bisect log")
    b.add_argument("--across-series", action="store_true",
                   help="let a bisection over distro kernels cross upstream series "
                        "(6.1.y → 6.12.y): their backports make the order unreliable")
    b.add_argument("--report-dir", help="where to write report.{md,html,json}")
    _scheduler(b)
    b.set_defaults(func=_cmd_bisect)

    sw = sub.add_parser("sweep", help="the nightly regression sweep: kernels × reproducers, "
                                      "compared with the previous nights (exit 1: a new "
                                      "regression; 75: another sweep of it is running)")
    sw.add_argument("--config", required=True, help="sweep YAML file (see sweep.example.yaml)")
    sw.add_argument("--no-bisect", action="store_true",
                    help="do not bisect new regressions (they are still reported)")
    sw.add_argument("--no-notify", action="store_true", help="send no mail or webhook")
    _scheduler(sw)
    sw.set_defaults(func=_cmd_sweep)

    rs = sub.add_parser("resume", help="continue an interrupted bisection")
    rs.add_argument("campaign", nargs="?", type=int, help="campaign id (default: latest)")
    rs.set_defaults(func=_cmd_resume)

    k = sub.add_parser("kernels", help="kernel sources")
    ksub = k.add_subparsers(dest="kernels_command", required=True)
    kl = ksub.add_parser("list", help="list kernels a source can provide")
    kl.add_argument("source", help="debian, ubuntu-mainline, local, git (tags of --tree)")
    kl.add_argument("--tree", help="kernel git checkout (for git)")
    kl.add_argument("selector", nargs="?", metavar="VERSION",
                    help="ubuntu-mainline: latest, a series (v6.1 or v6.1.y: its newest "
                         "build) or one version (v6.1.5, v6.2-rc3)")
    kl.add_argument("--all", action="store_true",
                    help="ubuntu-mainline: list failed builds too (marked failed)")
    kl.add_argument("--rc", action=argparse.BooleanOptionalAction, default=None,
                    help="ubuntu-mainline: release candidates (default: listed, but latest "
                         "and a series pick one only with --rc)")
    kl.add_argument("--flavour", help="ubuntu-mainline: generic (default, or "
                                      "$BISECTOR_UBUNTU_FLAVOUR), lowlatency, generic-64k …")
    kl.add_argument("--arch", help="ubuntu-mainline: amd64 (default, or $BISECTOR_UBUNTU_ARCH),"
                                   " arm64, ppc64el …")
    kl.set_defaults(func=_cmd_kernels_list)
    kf = ksub.add_parser("fetch", help="download/unpack (or build) kernels into the cache")
    kf.add_argument("specs", nargs="+")
    kf.add_argument("--tree", help="kernel git checkout (for git:REV specs)")
    kf.set_defaults(func=_cmd_kernels_fetch)

    ca = sub.add_parser("cache", help="what the cache holds; make room")
    csub = ca.add_subparsers(dest="cache_command", required=True)
    cd = csub.add_parser("du", help="bytes held per part of the cache")
    cd.set_defaults(func=_cmd_cache_du)
    cp = csub.add_parser("prune", help="remove least recently used kernels and downloads "
                                       "(never what a resumable campaign may need)")
    cp.add_argument("--keep", type=_bounded_int(0, 1 << 20), metavar="N",
                    help="keep the N most recently used of each kind")
    cp.add_argument("--older-than", type=_age, metavar="AGE",
                    help="remove what was not used for AGE (30d, 12h, 90m)")
    cp.add_argument("--dry-run", action="store_true", help="only say what would go")
    cp.set_defaults(func=_cmd_cache_prune)

    im = sub.add_parser("image", help="the guest root image")
    isub = im.add_subparsers(dest="image_command", required=True)
    ib = isub.add_parser("build", help="build (or find) the cached guest image")
    ib.add_argument("--name", default="bookworm")
    ib.add_argument("--rebuild", action="store_true")
    ib.set_defaults(func=_cmd_image_build)
    return p


def _exit_codes(command: str) -> tuple[int, int]:
    if command == "run":
        return RUN_EXIT_USER, RUN_EXIT_INFRA
    return EXIT_USER, EXIT_INFRA


def _command(argv: Sequence[str]) -> str:
    """The subcommand, known even when parsing fails (its exit codes depend on it)."""
    return next((a for a in argv if not a.startswith("-")), "")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _crash_report() -> Path:
    """Write the traceback of a bug where the run's evidence is (or the runs dir)."""
    from .paths import runs_dir

    where = _evidence_dir or runs_dir() / "crashes"
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"bisector-traceback-{time.strftime('%Y%m%dT%H%M%S')}.txt"
    path.write_text(f"bisector {__version__}: {' '.join(sys.argv)}\n\n{traceback.format_exc()}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    global _evidence_dir
    _evidence_dir = None
    argv = list(sys.argv[1:] if argv is None else argv)
    user_code, infra_code = _exit_codes(_command(argv))
    # SIGTERM (cron timeouts, CI cancels) and SIGHUP (a closed terminal or ssh session)
    # unwind like Ctrl-C, so every finally block tears its QEMU down and writes its evidence.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                            format="%(levelname)s %(name)s: %(message)s")
        if args.verbose < 2:
            # paramiko logs every refused banner while we poll a booting guest
            logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except Busy as exc:
        print(f"bisector: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the host: a full disk, a read-only or misplaced directory
        err = os_error(exc)
        kind = "infrastructure error" if isinstance(err, InfraError) else "error"
        print(f"bisector: {kind}: {err}", file=sys.stderr)
        return infra_code if isinstance(err, InfraError) else user_code
    except UserError as exc:
        print(f"bisector: error: {exc}", file=sys.stderr)
        return user_code
    except Untestable as exc:
        # only a command with no verdict to give gets here (e.g. `kernels fetch` of a
        # kernel whose build failed): the input names something that cannot be had
        where = f" (log: {exc.log_path})" if exc.log_path else ""
        print(f"bisector: error: cannot be tested: {exc}{where}", file=sys.stderr)
        return user_code
    except InfraError as exc:
        where = f" (logs: {exc.log_path})" if exc.log_path else ""
        print(f"bisector: infrastructure error: {exc}{where}", file=sys.stderr)
        return infra_code
    except KeyboardInterrupt:
        print("bisector: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug in bisector: never a verdict (exit 1 reads as BAD)
        try:
            path: Path | str = _crash_report()
        except OSError as werr:
            path = f"(could not write the traceback: {werr})"
        print(f"bisector: internal error: {exc.__class__.__name__}: {exc} — this is a bug "
              f"in bisector, not a verdict; traceback: {path}", file=sys.stderr)
        return infra_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
