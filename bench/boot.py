"""Boot benchmark: bisector's boot→SSH-ready time against virtme-ng, same kernel, TCG.

    .venv/bin/python bench/boot.py            # what `make bench-boot` runs
    .venv/bin/python bench/boot.py --runs 5 --no-vng --append "foo=bar"

Boots the Debian 6.1 kernel deb ``debian:6.1.0-56`` through the project's own
API (``runner.booted``: overlay, QEMU argv, console log, pinned-key SSH) and
reports the median of N boots, each split into phases from the console log:
the host time at which each marker line reached the console file (QEMU's
file chardev writes as the guest prints), with the guest's printk timestamp
alongside where the line has one.  Interleaved with those, virtme-ng boots the
same vmlinuz (with the same modules tree, 2 vCPUs, 1 GiB) and runs one shell
command; the ratio bisector/vng of the medians is the figure of merit (goal
≤ 0.75×).  Raw results go to ``bench/results/`` (git-ignored).
"""

from __future__ import annotations

import os
import sys

# `python bench/boot.py` puts bench/ first on sys.path, and bench/bisect.py (the bisection
# benchmark) would then shadow the standard library's bisect, which random, statistics
# and tempfile import: drop that entry before importing anything else.
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    del sys.path[0]

import argparse
import json
import logging
import platform
import re
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bisector import proc
from bisector.errors import BisectorError
from bisector.image import ensure_image
from bisector.kernel import resolve
from bisector.kernel.base import KernelArtifact
from bisector.kernel.bootfiles import boot_files
from bisector.runner import RunOptions, booted
from bisector.vm import QEMU, Accel, BootFailure, kernel_cmdline, probe_accel

KERNEL = "debian:6.1.0-56"
GOAL = 0.75
BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent

#: (phase that *ends* at this marker, console regexes; the first one seen wins)
MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("QEMU+firmware+early kernel", (r"Linux version ",)),
    ("kernel→init", (r"bisector-initramfs: loading", r"Run /init as init process",
                     r"bisector-init: started")),
    ("initramfs (modules, root)", (r"bisector-init: started", r"EXT4-fs \(vda\): mounted")),
    ("bisector-init", (r"bisector-init: starting sshd",)),
    ("sshd start", (r"Server listening on ",)),
)
READY = "SSH handshake"
PHASES = [name for name, _ in MARKERS] + [READY]
_STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]")


# ------------------------------------------------------------------ console watcher

@dataclass
class Seen:
    host: float  # seconds since QEMU was started (host clock)
    guest: float | None  # printk timestamp of the line, if it has one
    line: str


class ConsoleWatcher:
    """Polls a growing console log and notes when each marker line first arrived."""

    def __init__(self, path: Path, interval: float = 0.02) -> None:
        self.path = path
        self.interval = interval
        self.t0 = time.monotonic()
        self.seen: dict[str, Seen] = {}
        self._patterns = [(pat, re.compile(pat)) for _, pats in MARKERS for pat in pats]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._offset = 0
        self._partial = ""

    def start(self) -> ConsoleWatcher:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self._poll()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        if not data:
            return
        now = time.monotonic() - self.t0
        self._offset += len(data)
        text = self._partial + data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            for pat, rx in self._patterns:
                if pat not in self.seen and rx.search(line):
                    m = _STAMP.match(line)
                    self.seen[pat] = Seen(now, float(m.group(1)) if m else None,
                                          line.strip()[:160])


def breakdown(seen: dict[str, Seen], ready: float) -> dict[str, float | None]:
    """Phase durations (host clock) from marker arrival times; None when not seen."""
    out: dict[str, float | None] = {}
    prev = 0.0
    for name, pats in MARKERS:
        hit = next((seen[p] for p in pats if p in seen), None)
        if hit is None:
            out[name] = None
            continue
        out[name] = round(hit.host - prev, 2)
        prev = hit.host
    out[READY] = round(ready - prev, 2)
    return out


# ------------------------------------------------------------------ bisector boots

def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used so far.

    Wall time swings with whatever else the host runs; the CPU time QEMU spent
    to get the guest to SSH is a steadier measure of the work a boot takes.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)



def boot_once(art: KernelArtifact, run_dir: Path, opts: RunOptions, accel: Accel,
              initrd: Path | None, modules_disk: Path | None) -> dict[str, Any]:
    image = ensure_image(opts.image)
    run_dir.mkdir(parents=True, exist_ok=True)
    watcher = ConsoleWatcher(run_dir / "console.log").start()
    sample: dict[str, Any] = {"run_dir": str(run_dir)}
    try:
        with booted(art, image, run_dir, opts, accel, initrd, modules_disk) as b:
            ready = b.boot_seconds
            watcher.stop()
            assert b.vm.process is not None
            sample["qemu_cpu_s"] = cpu_seconds(b.vm.process.pid)
            # booted() times from just before QEMU starts; the overlay was made before that
            offset = time.monotonic() - watcher.t0 - ready
            t1 = time.monotonic()
            uname = b.guest.output("uname -r").strip()
            sample["first_command_s"] = round(time.monotonic() - t1, 2)
            sample["uname"] = uname
            if uname != art.release:
                raise SystemExit(f"guest runs {uname!r}, expected {art.release!r}")
    except BootFailure as exc:
        sample["error"] = f"boot failure: {exc.reason}"
        return sample
    finally:
        watcher.stop()
    for seen in watcher.seen.values():
        seen.host = round(seen.host - offset, 3)
    sample["boot_s"] = round(ready, 2)
    sample["overlay_s"] = round(offset, 3)
    sample["phases"] = breakdown(watcher.seen, ready)
    sample["markers"] = {k: vars(v) for k, v in watcher.seen.items()}
    return sample


# ------------------------------------------------------------------ virtme-ng

def ensure_vng() -> tuple[Path | None, str]:
    """The vng in our venv (pip-installed if missing), or None and why not."""
    vng = VENV_BIN / "vng"
    if not vng.exists():
        print("virtme-ng not installed; pip install virtme-ng …", flush=True)
        try:
            proc.run([sys.executable, "-m", "pip", "install", "-q", "virtme-ng"], timeout=600)
        except BisectorError as exc:
            return None, f"pip install virtme-ng failed: {exc}"
    if not vng.exists():
        return None, f"pip installed virtme-ng but {vng} does not exist"
    try:
        ver = proc.run([vng, "--version"], timeout=60).stdout.strip()
    except BisectorError as exc:
        return None, f"vng --version failed: {exc}"
    return vng, ver


def vng_argv(vng: Path, art: KernelArtifact, out_dir: Path, opts: RunOptions,
             *extra: str) -> list[str | Path]:
    result = out_dir / "uname.txt"
    return [vng, "--run", art.image, "--disable-kvm", "--cpus", str(opts.cpus),
            "--memory", f"{opts.memory_mb}M", "--rwdir", str(out_dir),
            "--exec", f"uname -r > {result}", *extra]


def vng_env() -> dict[str, str]:
    # vng starts virtme-run through a shell, so our venv's bin must be on PATH
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}


def vng_once(vng: Path, art: KernelArtifact, out_dir: Path, opts: RunOptions) -> dict[str, Any]:
    """One ``vng --run <vmlinuz> --disable-kvm --exec …``; wall time of the whole command.

    The command's output goes to a file on a --rwdir share: on a host without
    udev (like ours) virtme-ng's guest cannot find its virtio-serial script
    ports, falls back to the console, which it sends to /dev/null unless -v,
    and exits 255 even when the command ran — so the file is the evidence.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    result = out_dir / "uname.txt"
    result.unlink(missing_ok=True)
    argv = vng_argv(vng, art, out_dir, opts)
    (out_dir / "vng.cmd").write_text(proc.quote(argv) + "\n")
    t0 = time.monotonic()
    try:
        r = proc.run(argv, env=vng_env(), timeout=300, check=False, cwd=out_dir,
                     log_file=out_dir / "vng.log")
    except BisectorError as exc:
        return {"error": f"vng did not finish: {exc}"}
    secs = time.monotonic() - t0
    got = result.read_text().strip() if result.exists() else ""
    sample: dict[str, Any] = {"wall_s": round(secs, 2), "exit": r.returncode, "uname": got,
                              "dir": str(out_dir)}
    if got != art.release:
        tail = (r.stdout + r.stderr).strip().splitlines()[-5:]
        sample["error"] = (f"vng exited {r.returncode} without running the command "
                           f"(expected {art.release!r} in {result}, got {got!r}): "
                           + (" | ".join(tail) or "no output"))
    return sample


def vng_prep_seconds(vng: Path, art: KernelArtifact, out_dir: Path,
                     opts: RunOptions) -> float | None:
    """Host-side time vng spends before QEMU starts (its --dry-run: module scan, initramfs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        proc.run(vng_argv(vng, art, out_dir, opts, "--dry-run"), env=vng_env(), timeout=120,
                 cwd=out_dir, log_file=out_dir / "vng-dry-run.log")
    except BisectorError:
        return None
    return round(time.monotonic() - t0, 2)


# ------------------------------------------------------------------ report

def med(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 2) if xs else None


def fmt(x: float | None, width: int = 7) -> str:
    return f"{x:{width}.2f}" if x is not None else f"{'-':>{width}}"


def print_report(data: dict[str, Any]) -> None:
    samples = data["bisector"]["samples"]
    ok = [s for s in samples if "boot_s" in s]
    short = {PHASES[0]: "fw+kern", PHASES[1]: "k→init", PHASES[2]: "initrd",
             PHASES[3]: "ourinit", PHASES[4]: "sshd", READY: "ssh"}
    print()
    print(f"boot→SSH-ready, {data['kernel']} ({data['release']}), "
          f"{data['accel'].upper()}, {data['cpus']} vCPU, {data['memory_mb']} MiB")
    print("phases (host clock, when each marker line reached the console log): fw+kern = "
          "QEMU start, firmware, kernel load (decompression, for a bzImage) and early "
          "kernel until the console is up and shows the banner; k→init = kernel boot up to "
          "the initramfs; initrd = initramfs (module loading, root mount, switch_root); "
          "ourinit = bisector-init up to 'starting sshd'; sshd = to 'Server listening'; "
          "ssh = polling + SSH handshake until connected")
    print(f"host load average (1 min) before/after: {data['host']['load_before']:.2f} / "
          f"{data['host']['load_after']:.2f} on {data['host']['cpus']} CPUs "
          "(other work on the host slows both sides)")
    print(f"{'run':>6} {'boot→SSH':>9} " + " ".join(f"{short[p]:>7}" for p in PHASES)
          + f" {'1st cmd':>7} {'qemu CPU':>8}")
    for i, s in enumerate(samples, 1):
        if "boot_s" not in s:
            print(f"{i:>6} {s.get('error', '?')}")
            continue
        print(f"{i:>6} {s['boot_s']:9.2f} " + " ".join(fmt(s["phases"][p]) for p in PHASES)
              + f" {s['first_command_s']:7.2f} {fmt(s.get('qemu_cpu_s'), 8)}")
    if ok:
        meds = {p: med([s["phases"][p] for s in ok if s["phases"][p] is not None])
                for p in PHASES}
        cpu = med([s["qemu_cpu_s"] for s in ok if s.get("qemu_cpu_s") is not None])
        print(f"{'median':>6} {data['bisector']['median_s']:9.2f} "
              + " ".join(fmt(meds[p]) for p in PHASES) + f" {'':>7} {fmt(cpu, 8)}")
    vng = data["vng"]
    print()
    if vng.get("error"):
        print(f"virtme-ng: could not run here: {vng['error']}")
    else:
        walls = "  ".join(f"{s['wall_s']:.2f}" if "wall_s" in s and "error" not in s
                          else "fail" for s in vng["samples"])
        print(f"virtme-ng ({vng['version']}) boot + `uname -r` + power-off, wall: {walls}"
              f"  → median {fmt(vng['median_s'], 0)} s")
        for s in vng["samples"]:
            if "error" in s:
                print(f"  vng failure: {s['error']}")
    b_med = data["bisector"]["median_s"]
    print(f"bisector median {fmt(b_med, 0)} s (samples: "
          + ", ".join(f"{s['boot_s']:.2f}" for s in ok) + ")")
    if data.get("ratio") is not None:
        verdict = "meets" if data["ratio"] <= GOAL else "MISSES"
        print(f"ratio bisector/vng = {data['ratio']:.2f}× (goal ≤ {GOAL:.2f}×: {verdict})")
        other = data["ratios_other"]
        print("  for reference: bisector boot→SSH + first command / vng = "
              f"{fmt(other['with_first_command'], 0)}×; bisector / (vng − its host-side "
              f"preparation, {fmt(vng.get('prep_s'), 0)} s) = "
              f"{fmt(other['vng_without_prep'], 0)}×")
    else:
        print("ratio bisector/vng: n/a (no vng measurement)")
    print(f"raw results: {data['json']}")


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--kernel", default=KERNEL)
    ap.add_argument("--runs", type=int, default=3, help="boots of each (default 3)")
    ap.add_argument("--no-vng", action="store_true", help="skip the virtme-ng side")
    ap.add_argument("--append", default="", help="extra kernel command line (experiments)")
    ap.add_argument("--label", default="", help="a note stored with the results")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # failed connects while sshd is still starting are expected; paramiko logs them as errors
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    load_before = os.getloadavg()[0]
    out = RESULTS / f"boot-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    opts = RunOptions(accel="tcg", append=args.append)
    art = resolve(args.kernel)
    ensure_image(opts.image)
    files = boot_files(art)
    accel, why = probe_accel(art.image, "tcg")
    print(f"kernel {art.spec} = {art.release} ({art.image}); accel {accel.value} ({why})")
    print(f"cmdline: {kernel_cmdline(extra=opts.append, initrd=files.initrd is not None)}")

    vng: Path | None = None
    vng_info = ""
    if not args.no_vng:
        vng, vng_info = ensure_vng()
        if vng is None:
            print(f"virtme-ng unavailable: {vng_info}")

    b_samples: list[dict[str, Any]] = []
    v_samples: list[dict[str, Any]] = []
    vng_error = vng_info if vng is None and not args.no_vng else ""
    for i in range(1, args.runs + 1):  # interleaved, so drift on the host hits both alike
        s = boot_once(art, out / f"bisector-{i}", opts, accel, files.initrd,
                      files.modules_disk)
        b_samples.append(s)
        print(f"bisector boot {i}/{args.runs}: "
              + (f"{s['boot_s']:.2f} s" if "boot_s" in s else s.get("error", "?")), flush=True)
        if vng is not None and not vng_error:
            v = vng_once(vng, art, out / f"vng-{i}", opts)
            v_samples.append(v)
            print(f"vng boot {i}/{args.runs}: "
                  + (f"{v['wall_s']:.2f} s" if "error" not in v else v["error"]), flush=True)
            if "error" in v and i == 1:
                vng_error = v["error"]  # it will not get better; don't burn the time budget

    b_ok = [s["boot_s"] for s in b_samples if "boot_s" in s]
    v_ok = [s["wall_s"] for s in v_samples if "error" not in s]
    b_med, v_med = med(b_ok), med(v_ok)
    b_cmd = med([s["boot_s"] + s["first_command_s"] for s in b_samples if "boot_s" in s])
    prep = vng_prep_seconds(vng, art, out / "vng-dry-run", opts) if vng and v_ok else None
    if not v_ok and not vng_error:
        vng_error = "skipped (--no-vng)" if args.no_vng else "no successful vng run"
    qemu_ver = proc.run([QEMU, "--version"], timeout=30).stdout.splitlines()[0]
    data: dict[str, Any] = {
        "when": stamp, "label": args.label, "kernel": art.spec, "release": art.release,
        "accel": accel.value, "cpus": opts.cpus, "memory_mb": opts.memory_mb,
        "cmdline": kernel_cmdline(extra=opts.append, initrd=files.initrd is not None),
        "qemu": qemu_ver, "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                   "kernel": platform.release(), "load_before": load_before,
                                   "load_after": os.getloadavg()[0]},
        "bisector": {"median_s": b_med, "samples": b_samples},
        "vng": {"version": vng_info if vng is not None else None, "median_s": v_med,
                "prep_s": prep, "samples": v_samples, "error": vng_error or None},
        "ratio": round(b_med / v_med, 3) if b_med and v_med else None,
        "ratios_other": {
            "with_first_command": round(b_cmd / v_med, 3) if b_cmd and v_med else None,
            "vng_without_prep": round(b_med / (v_med - prep), 3)
            if b_med and v_med and prep is not None and v_med > prep else None},
        "goal": GOAL,
    }
    qemu_cmd = out / "bisector-1" / "qemu.cmd"
    if qemu_cmd.exists():
        data["qemu_cmd"] = qemu_cmd.read_text().strip()
    path = RESULTS / f"boot-{stamp}.json"
    data["json"] = str(path)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print_report(data)
    return 0 if b_ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BisectorError as exc:
        sys.exit(f"bench/boot.py: {exc.__class__.__name__}: {exc}")
