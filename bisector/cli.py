"""``bisector …``: subcommands and the one place errors become exit codes.

Exit codes
----------
``run`` acts as a ``git bisect run`` script: 0 GOOD, 1 BAD, 125 SKIP, and
every error ≥ 128 (129 user error, 130 interrupted, 131 infrastructure), so
that a broken setup aborts a bisection instead of marking commits bad.
Other subcommands: 0 success, 1 a check failed (e.g. ``repro validate``),
2 user error, 3 infrastructure error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .bisect import Bisection, Handler, StepOutcome
from .errors import BisectorError, InfraError, UserError

log = logging.getLogger("bisector")

EXIT_USER, EXIT_INFRA, EXIT_INTERRUPTED = 2, 3, 130
RUN_EXIT_USER, RUN_EXIT_INFRA = 129, 131


def _cmd_run(args: argparse.Namespace) -> int:
    from . import reproducer, runner
    from .paths import new_run_dir

    repro = reproducer.load(Path(args.repro), reproducer.parse_overrides(args.param))
    run_dir = new_run_dir(args.kernel, repro.spec.name, Path(args.run_dir) if args.run_dir
                          else None)
    print(f"run directory: {run_dir}", file=sys.stderr)
    opts = runner.RunOptions(accel=args.accel, boot_timeout=args.boot_timeout,
                             memory_mb=args.memory, cpus=args.cpus, append=args.append)
    artifact = None
    if args.kernel.startswith("git:"):
        from .kernel.gitbuild import BuildFailure, GitBuildSource

        if not args.tree:
            raise UserError("--kernel git:REV needs --tree PATH")
        src = GitBuildSource(Path(args.tree), required=repro.spec.requires.config,
                             fragments=[Path(f) for f in args.config_fragment])
        try:
            artifact = src.resolve(args.kernel[4:])
        except BuildFailure as exc:
            print(f"SKIP: {exc} (build log: {exc.log_path})")
            return 125
    try:
        res = runner.run(args.kernel, repro, run_dir, opts, artifact=artifact)
    except BisectorError as exc:
        exc.log_path = exc.log_path or run_dir
        raise
    assert res.verdict is not None
    phases = "  ".join(f"{k} {v:.1f}s" for k, v in res.phases.items())
    if args.json:
        print(json.dumps(res.to_json(), indent=2))
    else:
        print(f"{res.verdict.name}: {res.reason}")
        print(f"kernel: {res.kernel} ({res.release or '?'})  accel: {res.accel or '-'}")
        print(f"phases: {phases}")
        print(f"logs:   {run_dir}")
    return res.verdict.exit_code


class CLIHandler(Handler):
    """Progress lines for a terminal or a log (one line per event)."""

    def stage_started(self, stage: str, bisection: Bisection) -> None:
        print(f"[bisector] {stage} stage: ~{bisection.steps_left()} steps", file=sys.stderr,
              flush=True)

    def step_started(self, stage: str, index: int, candidate: str, left: int) -> None:
        what = candidate[:12] if stage != "list" else candidate
        tail = f" (~{left} step{'s' if left != 1 else ''} left)" if left else ""
        print(f"[bisector] {stage} #{index or '-'}: testing {what}{tail}", file=sys.stderr,
              flush=True)

    def step_finished(self, stage: str, index: int, candidate: str, o: StepOutcome) -> None:
        what = candidate[:12] if stage != "list" else candidate
        cached = " (cached)" if o.cached else ""
        print(f"[bisector] {stage} #{index or '-'}: {what} {o.verdict.name}  build "
              f"{o.build_s:.0f}s{cached} boot {o.boot_s:.0f}s test {o.test_s:.0f}s — "
              f"{o.reason[:140]}", file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        print(f"[bisector] {text}", file=sys.stderr, flush=True)


def _print_campaign(cr: object, report_dir: Path | None) -> int:
    from . import report
    from .campaign import CampaignResult
    from .store import Store

    assert isinstance(cr, CampaignResult)
    c = cr.campaign
    steps = Store().steps(c.id)
    out = report.write(c, steps, cr.status, cr.result, report_dir or c.dir / "report")
    res = cr.result
    if "culprit" in res:
        cu = res["culprit"]
        label = "first fixed commit" if res["terms"]["find_fix"] else "culprit"
        print(f"{label}: {cu['sha'][:12]} {cu['subject']}")
        print(f"  {cu['fixes']}")
        if not res["terms"]["find_fix"]:
            print(f"  #regzbot introduced: {cu['sha']}")
    elif cr.status == "done":
        lst = res["stages"][-1]
        print(f"first {res['terms']['new']} kernel: {lst['first']} "
              f"(last {res['terms']['old']}: {lst['last_old']})")
    elif cr.status == "mismatch":
        print(f"not bisected further: {res['mismatch']}")
    else:
        cands = res.get("candidates") or res["stages"][-1].get("candidates", [])
        names = [c["sha"][:12] if isinstance(c, dict) else c for c in cands]
        print(f"inconclusive: the first {res['terms']['new']} is one of {', '.join(names)}")
    real = [s for s in steps if not s.replayed]
    print(f"steps: {len(real)}  builds: {sum(1 for s in real if s.build_s and not s.cached)}  "
          f"report: {out['md']}")
    return 0 if cr.status == "done" else 1


def _cmd_bisect(args: argparse.Namespace) -> int:
    from .campaign import BisectArgs, run_campaign
    from .reproducer import parse_overrides

    ba = BisectArgs(repro=args.repro, good=args.good, bad=args.bad, tree=args.tree,
                    params=parse_overrides(args.param), find_fix=args.find_fix,
                    term_old=args.term_old, term_new=args.term_new,
                    fragments=args.config_fragment, verify=not args.no_verify,
                    replay=args.replay, accel=args.accel, boot_timeout=args.boot_timeout,
                    report_dir=args.report_dir)
    cr = run_campaign(ba, CLIHandler())
    return _print_campaign(cr, Path(args.report_dir) if args.report_dir else None)


def _cmd_resume(args: argparse.Namespace) -> int:
    from .campaign import BisectArgs, run_campaign
    from .store import Store

    st = Store()
    c = st.get(args.campaign) if args.campaign else st.find_unfinished()
    if c is None:
        raise UserError("no unfinished campaign to resume" if not args.campaign
                        else f"no campaign {args.campaign}")
    if c.status != "running":
        raise UserError(f"campaign {c.id} already finished ({c.status}); see {c.dir}/report")
    a = dict(c.args)
    ba = BisectArgs(**a)
    cr = run_campaign(ba, CLIHandler(), st)
    return _print_campaign(cr, Path(ba.report_dir) if ba.report_dir else None)


def _cmd_repro_prove(args: argparse.Namespace) -> int:
    from . import reproducer, runner
    from .progress import note
    from .prove import prove

    repro = reproducer.load(Path(args.file), reproducer.parse_overrides(args.param))
    opts = runner.RunOptions(accel=args.accel, boot_timeout=args.boot_timeout)
    proof, out = prove(repro, args.good, args.bad, runs=args.runs,
                       tree=Path(args.tree) if args.tree else None,
                       fragments=[Path(f) for f in args.config_fragment], opts=opts,
                       parent=Path(args.run_dir) if args.run_dir else None, say=note)
    print(proof.line())
    print(f"evidence: {out}")
    return 0 if proof.passed else 1


def _cmd_repro_validate(args: argparse.Namespace) -> int:
    from . import reproducer

    failed = 0
    for f in args.files:
        try:
            spec, _ = reproducer.parse(Path(f))
            reproducer.load(Path(f))
            print(f"ok: {f} ({spec.name})")
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _cmd_kernels_list(args: argparse.Namespace) -> int:
    from . import kernel

    src = kernel.source_for(args.source)
    entries = src.available()
    if not entries:
        print(f"{args.source}: nothing to list (this source takes explicit paths)")
    for e in entries:
        print(f"{e.spec:40} {e.version:28} {e.note}")
    return 0


def _cmd_kernels_fetch(args: argparse.Namespace) -> int:
    from . import kernel
    from .kernel.bootfiles import boot_files

    for spec in args.specs:
        art = kernel.resolve(spec)
        files = boot_files(art)
        print(json.dumps({"spec": art.spec, "release": art.release, "image": str(art.image),
                          "modules": str(art.modules) if art.modules else None,
                          "initrd": str(files.initrd) if files.initrd else None,
                          "meta": art.meta}, indent=2))
    return 0


def _cmd_image_build(args: argparse.Namespace) -> int:
    from .image import ensure_image

    img = ensure_image(args.name, rebuild=args.rebuild)
    print(img.root)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    """Options every kernel-testing command takes (run, repro prove, bisect)."""
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a reproducer parameter (repeatable)")
    p.add_argument("--config-fragment", action="append", default=[], metavar="FILE",
                   help="extra kernel config fragment for git builds (repeatable)")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    p.add_argument("--boot-timeout", type=float, default=180.0, metavar="SECONDS")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bisector", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"bisector {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="boot one kernel and run a reproducer in it "
                                   "(exit 0 good, 1 bad, 125 skip: a git bisect run script)")
    r.add_argument("--kernel", required=True,
                   help="debian:6.1.0-56, ubuntu-mainline:v5.7.1, local:/path/linux-image.deb")
    r.add_argument("--repro", required=True, help="reproducer YAML file")
    _common(r)
    r.add_argument("--memory", type=int, default=1024, metavar="MIB")
    r.add_argument("--cpus", type=int, default=2)
    r.add_argument("--append", default="", help="extra kernel command line")
    r.add_argument("--run-dir", help="parent directory for this run's logs")
    r.add_argument("--tree", help="kernel git checkout for --kernel git:REV")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
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
    b.add_argument("--good", required=True, help="git rev, or debian:… / ubuntu-mainline:…")
    b.add_argument("--bad", required=True, help="git rev, or debian:… / ubuntu-mainline:…")
    b.add_argument("--tree", help="kernel git checkout (required for git revisions; with "
                                  "prebuilt endpoints it adds the upstream git stage)")
    b.add_argument("--find-fix", action="store_true",
                   help="look for the first GOOD commit (the fix) instead of the first BAD")
    b.add_argument("--term-old", help="custom git bisect term for the old state")
    b.add_argument("--term-new", help="custom git bisect term for the new state")
    _common(b)
    b.add_argument("--no-verify", action="store_true",
                   help="do not test the endpoints before bisecting")
    b.add_argument("--replay", metavar="LOG", help="seed the bisection with a git bisect log")
    b.add_argument("--report-dir", help="where to write report.{md,html,json}")
    b.set_defaults(func=_cmd_bisect)

    rs = sub.add_parser("resume", help="continue an interrupted bisection")
    rs.add_argument("campaign", nargs="?", type=int, help="campaign id (default: latest)")
    rs.set_defaults(func=_cmd_resume)

    k = sub.add_parser("kernels", help="kernel sources")
    ksub = k.add_subparsers(dest="kernels_command", required=True)
    kl = ksub.add_parser("list", help="list kernels a source can provide")
    kl.add_argument("source", help="debian, ubuntu-mainline, local")
    kl.set_defaults(func=_cmd_kernels_list)
    kf = ksub.add_parser("fetch", help="download/unpack kernels into the cache")
    kf.add_argument("specs", nargs="+")
    kf.set_defaults(func=_cmd_kernels_fetch)

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


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        # paramiko logs every refused banner while we poll a booting guest
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    user_code, infra_code = _exit_codes(args.command)
    func: Callable[[argparse.Namespace], int] = args.func
    # SIGTERM (cron timeouts, CI cancels) unwinds like Ctrl-C, so every finally block
    # tears its QEMU down and writes its evidence.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return func(args)
    except UserError as exc:
        print(f"bisector: error: {exc}", file=sys.stderr)
        return user_code
    except InfraError as exc:
        where = f" (logs: {exc.log_path})" if exc.log_path else ""
        print(f"bisector: infrastructure error: {exc}{where}", file=sys.stderr)
        return infra_code
    except KeyboardInterrupt:
        print("bisector: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BisectorError as exc:  # pragma: no cover - every subclass is handled above
        print(f"bisector: error: {exc}", file=sys.stderr)
        return infra_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
