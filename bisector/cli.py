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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
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
    try:
        res = runner.run(args.kernel, repro, run_dir, opts)
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
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a reproducer parameter (repeatable)")
    r.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    r.add_argument("--boot-timeout", type=float, default=180.0, metavar="SECONDS")
    r.add_argument("--memory", type=int, default=1024, metavar="MIB")
    r.add_argument("--cpus", type=int, default=2)
    r.add_argument("--append", default="", help="extra kernel command line")
    r.add_argument("--run-dir", help="parent directory for this run's logs")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.set_defaults(func=_cmd_run)

    rp = sub.add_parser("repro", help="reproducer files")
    rsub = rp.add_subparsers(dest="repro_command", required=True)
    v = rsub.add_parser("validate", help="check reproducer files against the schema")
    v.add_argument("files", nargs="+")
    v.set_defaults(func=_cmd_repro_validate)

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s")
    user_code, infra_code = _exit_codes(args.command)
    func: Callable[[argparse.Namespace], int] = args.func
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
