"""One run: a kernel, the guest image, a reproducer → a verdict with evidence.

Phases (each timed, all recorded in ``result.json`` in a ``finally`` block,
also when the run fails): kernel (fetch/unpack), image, bootfiles, boot (to
SSH ready), test (iterations), teardown.  The run directory keeps the
console log, the SSH transcript, dmesg per iteration, the kernel config, the
rendered reproducer and the exact QEMU command.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .errors import BisectorError, Untestable, UserError
from .guest import Guest, GuestLost
from .image import GuestImage, ensure_image
from .kernel.base import KernelArtifact
from .kernel.bootfiles import boot_files
from .kernel.resolver import KernelResolver
from .paths import mark_finished, mark_running, write_atomic
from .progress import note
from .reproducer import Reproducer
from .verdict import (
    Iteration,
    Outcome,
    Verdict,
    can_stop_early,
    combine,
    find_crash,
    judge_iteration,
)
from .vm import VM, Accel, BootFailure, Disk, Machine, free_port, kernel_cmdline, probe_accel

log = logging.getLogger(__name__)

GUEST_WORKDIR = "/root/repro"


@dataclass
class RunOptions:
    accel: str = "auto"
    boot_timeout: float = 180.0
    memory_mb: int = 1024
    cpus: int = 2
    append: str = ""
    image: str = "bookworm"
    #: let the guest reach the host and beyond (set from the reproducer's
    #: ``requires.network``; off: slirp ``restrict=on``, only forwarded SSH works)
    outside_network: bool = False


@dataclass
class RunResult:
    kernel: str
    reproducer: str
    run_dir: str
    verdict: Verdict | None = None
    reason: str = ""
    release: str = ""
    accel: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    iterations: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    #: things the reader must know that do not change the verdict (e.g. config unknown)
    notes: list[str] = field(default_factory=list)
    #: for SKIP because the kernel could not be tested: the log that shows why
    untestable_log: str | None = None
    #: the kernel artifact's cache directory (build.log of a git build lives there)
    artifact_dir: str | None = None

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["verdict"] = self.verdict.value if self.verdict else None
        #: running, finished (a verdict), error (see ``error``); "killed" is written by
        #: the next run that finds this one's process gone (paths.reap_killed_runs)
        d["status"] = ("error" if self.error else "finished" if self.verdict is not None
                       else "running")
        return d


class Timer:
    def __init__(self, result: RunResult) -> None:
        self.result = result

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.result.phases[name] = round(
                self.result.phases.get(name, 0.0) + time.monotonic() - t0, 2)


class MissingConfig(Untestable):
    """The kernel lacks an option the reproducer requires."""


def check_config(art: KernelArtifact, repro: Reproducer) -> str | None:
    """Raise :class:`MissingConfig` for a missing required option; return a note
    when the config is unknown and the requirements could not be checked."""
    wanted = repro.spec.requires.config
    values = art.config_values()
    if not values:
        return (f"kernel config unknown: required options not checked "
                f"({', '.join(wanted)})") if wanted else None
    missing = [o for o in wanted if values.get(o) not in ("y", "m")]
    if missing:
        raise MissingConfig(f"kernel config lacks {', '.join(missing)}")
    return None


def run(kernel_spec: str, repro: Reproducer, run_dir: Path, opts: RunOptions | None = None,
        *, kernels: KernelResolver | None = None, artifact: KernelArtifact | None = None,
        on_phase: Callable[[str], None] | None = None) -> RunResult:
    """Resolve (fetch/build) ``kernel_spec``, boot it and run ``repro``.

    This is the one place where "this kernel cannot be tested"
    (:class:`~bisector.errors.Untestable`: build failure, kernel unavailable,
    missing config option, boot failure, guest lost before the test) becomes
    a SKIP verdict; user and infrastructure errors propagate, with
    ``result.json`` written either way.
    """
    opts = replace(opts or RunOptions(), outside_network=repro.spec.requires.network)
    res = RunResult(kernel=kernel_spec, reproducer=str(repro.path), run_dir=str(run_dir))
    if opts.outside_network:
        res.notes.append("guest network open: the reproducer declares requires.network, "
                         "so the guest can reach the host (10.0.2.2) and beyond")
    timer = Timer(res)
    say = on_phase or note
    # the whole record first (status "running"), then the pid: a run killed from here
    # on leaves a complete result.json that the next run marks "killed"
    write_atomic(run_dir / "result.json", json.dumps(res.to_json(), indent=2))
    mark_running(run_dir)
    try:
        write_atomic(run_dir / "reproducer.yaml", repro.text)
        write_atomic(run_dir / "params.json", json.dumps(repro.params, indent=2))
        with timer.phase("kernel"):
            art = artifact or (kernels or KernelResolver(
                required=repro.spec.requires.config)).resolve(kernel_spec)
        res.release, res.artifact_dir = art.release, str(art.root)
        signature = art.meta.get("checksums_signature")
        if isinstance(signature, str) and signature.startswith("not checked"):
            unsigned = f"{art.spec}: CHECKSUMS signature {signature}"
            res.notes.append(unsigned)
            say(unsigned)
        if art.config is not None:
            shutil.copyfile(art.config, run_dir / "kernel.config")
        config_note = check_config(art, repro)
        if config_note is not None:
            res.notes.append(config_note)
            say(config_note)
        outcome = boot_and_test(art, repro, run_dir, opts, timer, say)
        res.verdict, res.reason = outcome.verdict, outcome.reason
        res.iterations = [{"verdict": d.verdict.value, "reason": d.reason}
                          for d in outcome.iterations]
        return res
    except Untestable as exc:
        res.verdict, res.reason = Verdict.SKIP, str(exc)
        res.untestable_log = str(exc.log_path) if exc.log_path else None
        (run_dir / "untestable.txt").write_text(
            f"{exc.__class__.__name__}: {exc}\nlog: {exc.log_path or '-'}\n")
        say(f"cannot test {kernel_spec}: {exc}")
        return res
    except BisectorError as exc:
        res.error = f"{exc.__class__.__name__}: {exc}"
        raise
    except BaseException as exc:
        res.error = f"{exc.__class__.__name__}: {exc}"
        (run_dir / "traceback.txt").write_text(traceback.format_exc())
        raise
    finally:
        write_atomic(run_dir / "result.json", json.dumps(res.to_json(), indent=2))
        mark_finished(run_dir)


@dataclass
class Booted:
    vm: VM
    guest: Guest
    boot_seconds: float


@contextmanager
def booted(art: KernelArtifact, image: GuestImage, run_dir: Path, opts: RunOptions,
           accel: Accel, initrd: Path | None = None,
           modules_disk: Path | None = None, boot_no: int = 1) -> Iterator[Booted]:
    """Boot ``art`` on a throw-away overlay and yield once SSH is up.

    Raises :class:`BootFailure` (kernel's fault → SKIP) or InfraError; QEMU and
    the overlay are gone when the block exits, whatever happened.
    """
    overlay = image.overlay(run_dir / "overlay.qcow2")
    disks = [Disk(overlay, "qcow2")]
    if modules_disk is not None:
        disks.append(Disk(modules_disk, "raw", readonly=True))
    machine = Machine(kernel=art.image, initrd=initrd,
                      cmdline=kernel_cmdline(extra=opts.append, initrd=initrd is not None),
                      console_log=run_dir / ("console.log" if boot_no == 1
                                             else f"console-boot{boot_no}.log"),
                      ssh_port=free_port(), accel=accel,
                      disks=tuple(disks), memory_mb=opts.memory_mb, cpus=opts.cpus,
                      outside=opts.outside_network)
    vm = VM(machine, run_dir)
    guest = Guest(machine.ssh_port, image.host_key_pub, image.client_key,
                  run_dir / "ssh-transcript.log")
    try:
        t0 = time.monotonic()
        vm.start()
        vm.wait_ready(guest.connect, opts.boot_timeout)
        yield Booted(vm, guest, time.monotonic() - t0)
    finally:
        guest.close()
        vm.stop()
        overlay.unlink(missing_ok=True)


def boot_and_test(art: KernelArtifact, repro: Reproducer, run_dir: Path, opts: RunOptions,
                  timer: Timer, say: Callable[[str], None]) -> Outcome:
    """The VM boundary: guest image, boot files, accelerator, boot, iterations.

    Raises :class:`BootFailure` / :class:`GuestLost` (the kernel cannot be
    tested) or InfraError; unit tests that exercise everything around a run
    replace this one function.
    """
    with timer.phase("image"):
        image = ensure_image(opts.image)
    with timer.phase("bootfiles"):
        files = boot_files(art)
    accel, accel_why = probe_accel(art.image, opts.accel, workdir=run_dir)
    timer.result.accel = f"{accel.value} ({accel_why})"
    say(f"booting {art.spec} ({art.release}) under {accel.value.upper()}")
    return _boot_and_run(art, image, files.initrd, files.modules_disk, repro, run_dir, opts,
                         accel, timer, say)


def _boot_and_run(art: KernelArtifact, image: GuestImage, initrd: Path | None,
                  modules_disk: Path | None, repro: Reproducer, run_dir: Path, opts: RunOptions,
                  accel: Accel, timer: Timer, say: Callable[[str], None]) -> Outcome:
    """Boot as often as the iterations need: all of them in one guest by default, a new
    boot only when the guest died (a crash ends that boot) or the reproducer asks for
    a fresh boot per iteration (``verdict.fresh_boot``).  A first boot that crashes is
    retried once (TCG guests see rare boot-time oopses) before the kernel is SKIP."""
    rules = repro.spec.verdict
    decisions: list[Outcome] = []
    boot_no, crash_retries = 0, 1
    while len(decisions) < rules.repeat and not can_stop_early(decisions, rules):
        boot_no += 1
        t0 = time.monotonic()
        try:
            with booted(art, image, run_dir, opts, accel, initrd, modules_disk,
                        boot_no=boot_no) as b:
                timer.result.phases["boot"] = round(
                    timer.result.phases.get("boot", 0.0) + b.boot_seconds, 2)
                say(f"SSH ready after {b.boot_seconds:.1f}s; running {repro.spec.name}")
                with timer.phase("test"):
                    _test(b.guest, b.vm, repro, run_dir, say, decisions)
                t_down = time.monotonic()
            timer.result.phases["teardown"] = round(
                timer.result.phases.get("teardown", 0.0) + time.monotonic() - t_down, 2)
        except BootFailure as exc:
            timer.result.phases["boot"] = round(
                timer.result.phases.get("boot", 0.0) + time.monotonic() - t0, 2)
            if decisions:  # a later boot failed: judge the iterations that ran
                say(f"boot {boot_no} failed ({exc.reason}); judging {len(decisions)} "
                    "iteration(s)")
                break
            if crash_retries and exc.reason.startswith("kernel crashed during boot"):
                crash_retries -= 1
                say(f"boot crashed ({exc.reason}); retrying once")
                continue
            raise BootFailure(f"boot failure: {exc.reason}", exc.console) from exc
        except Untestable as exc:
            if not decisions:
                raise
            say(f"boot {boot_no}: {exc}; judging {len(decisions)} iteration(s)")
            break
        if len(decisions) < rules.repeat and not can_stop_early(decisions, rules):
            say(f"booting again for iteration {len(decisions) + 1}/{rules.repeat}")
    return combine(decisions, rules)


def _test(guest: Guest, vm: VM, repro: Reproducer, run_dir: Path,
          say: Callable[[str], None], decisions: list[Outcome]) -> None:
    """Iterations in this guest, appended to ``decisions``, until the verdict is settled,
    the guest dies, or (``fresh_boot``) after one."""
    rules = repro.spec.verdict
    try:
        (run_dir / "uname.txt").write_text(guest.output("uname -a"))
        missing = guest.output(
            "for t in " + " ".join(repro.spec.requires.tools or ["true"])
            + "; do command -v $t >/dev/null || echo $t; done").split()
        if missing:
            raise UserError(f"{repro.path}: the guest image lacks required tools: "
                            f"{', '.join(missing)} (add them to vm-images/*/packages.txt)")
        for f in repro.files:
            guest.put(f.data, f"{GUEST_WORKDIR}/{f.path}", f.mode)
        (run_dir / "dmesg-boot.txt").write_text(guest.output("dmesg"))
    except GuestLost as exc:
        raise _lost_before_test(vm, str(exc)) from exc
    while len(decisions) < rules.repeat:
        i = len(decisions)
        it = _iteration(guest, vm, repro, run_dir, i)
        d = judge_iteration(it, rules)
        decisions.append(d)
        (run_dir / f"iteration-{i + 1}.json").write_text(json.dumps(
            {"verdict": d.verdict.value, "reason": d.reason, "guest_lost": it.guest_lost,
             "steps": [asdict(s) for s in it.steps]}, indent=2))
        say(f"iteration {i + 1}/{rules.repeat}: {d.verdict.value.upper()} ({d.reason})")
        if it.guest_lost or rules.fresh_boot or can_stop_early(decisions, rules):
            return


def _lost_before_test(vm: VM, why: str) -> Untestable:
    """The guest went away before any iteration: name the crash if the console has one."""
    time.sleep(1.0)  # let the console catch the tail of a panic
    vm.check_qemu()
    line = find_crash(vm.console())
    if line:
        return Untestable(f"kernel crashed before the test: {line}", vm.machine.console_log)
    return Untestable(f"guest lost before the test: {why}", vm.machine.console_log)


def _iteration(guest: Guest, vm: VM, repro: Reproducer, run_dir: Path, index: int) -> Iteration:
    it = Iteration()
    offset = vm.console_size()
    budget_end = time.monotonic() + repro.spec.timeout
    n = index + 1
    try:
        guest.output("dmesg -C")
        for phase, steps in (("setup", repro.setup), ("run", repro.run)):
            for step in steps:
                left = max(1.0, budget_end - time.monotonic())
                r = guest.run(step.run, timeout=min(step.timeout, left), name=step.name,
                              phase=phase, cwd=GUEST_WORKDIR)
                it.steps.append(r)
                if r.exit_status != 0:
                    break
            else:
                continue
            break
    except GuestLost as exc:
        vm.check_qemu(settle=1.0)  # QEMU killed or failed: the machinery's fault
        it.guest_lost = True
        log.info("guest lost in iteration %d: %s", n, exc)
    if not it.guest_lost:
        try:
            for step in repro.cleanup:
                it.steps.append(guest.run(step.run, timeout=step.timeout, name=step.name,
                                          phase="cleanup", cwd=GUEST_WORKDIR))
            it.kernel_log = guest.output("dmesg")
        except GuestLost:
            vm.check_qemu(settle=1.0)
            it.guest_lost = True
    if it.guest_lost:
        time.sleep(2.0)  # the console may still be receiving the end of an oops
        it.kernel_log = vm.console(offset)
    (run_dir / f"dmesg-iteration-{n}.txt").write_text(it.kernel_log)
    return it
