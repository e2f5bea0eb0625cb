"""Bad inputs and host faults, one row each, through the real CLI in a subprocess.

Every row is (id, how the fault is set up, the argv) → the exit code, a
fragment of the one error line on stderr (``bisector: error: …``,
``bisector: infrastructure error: …``; ``error: FILE: …`` for ``repro
validate``; for a verdict, of stdout), and the same "nothing left behind"
checks for all (:func:`left_behind`): no traceback, no ``*.tmp`` file or
``.tmp/`` directory and no ``.part*`` download under the cache or the run
directories, no QEMU process, and a complete ``result.json`` (and no
``run.pid``) in every run directory that was made.

A new fault class is one new row in :data:`FAULTS` (reproducer faults: one
line in :data:`REPRO_FAULTS`, checked through both ``run`` and ``repro
validate``).  The rows need no kernel and no guest, except those marked
``vm``: they boot ``debian:6.1.0-56`` from the user's cache (``make image``;
the kernel fetched once) under TCG.  Network traffic goes to 127.0.0.1 only:
the Debian archive is a dead port on 127.0.0.1 unless a row serves one.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bisector.paths import cache_dir
from tests.fakes.archive import build_deb, debian_archive, fake_kernel
from tests.fakes.faulty_http import FaultyServer, fill, serve_faulty

REPO = Path(__file__).resolve().parents[2]
GRE = REPO / "reproducers" / "gre-ecn-mac-corruption.yaml"
#: the user's cache (the vm rows use its guest image and kernel), read before any
#: fixture points BISECTOR_CACHE elsewhere
REAL_CACHE = cache_dir()
KERNEL = "debian:6.1.0-56"
REL = "6.1.0-56-amd64"
PKG = f"linux-image-{REL}-unsigned"
#: nothing listens there: a row that does not serve an archive never leaves the host
DEAD = "http://127.0.0.1:9"
TIMEOUT = 60.0

Argv = list[str]


# ----------------------------------------------------------------------- the context

@dataclass
class Ctx:
    """One row's world: a temporary directory, the environment of the CLI, cleanups."""

    tmp: Path
    env: dict[str, str]
    stack: ExitStack
    #: directories under which run directories may be made (checked afterwards)
    roots: list[Path] = field(default_factory=list)
    server: FaultyServer | None = None
    #: a run directory the row expects (set by the row's setup or its `during`)
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def cache(self) -> Path:
        return Path(self.env["BISECTOR_CACHE"])

    def path(self, name: str) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def repro(self, name: str = "r", extra: str = "", run: str = "true",
              folder: str = "repro") -> Path:
        """A minimal valid reproducer ``<folder>/<name>.yaml`` plus ``extra`` top-level YAML."""
        path = self.path(f"{folder}/{name}.yaml")
        path.write_text(f"name: {name}\ntitle: a fault row\n{extra}\n"
                        f"run:\n  - {{name: step, run: {json.dumps(run)}, timeout: 90}}\n"
                        "verdict:\n  good: {exit_status: [0]}\n  bad: {exit_status: [1]}\n")
        return path

    def run_argv(self, repro: Path, kernel: str = KERNEL, *extra: str) -> Argv:
        return ["run", "--kernel", kernel, "--repro", str(repro), *extra]

    def run_dir_parent(self, path: Path) -> Path:
        self.roots.append(path)
        return path

    def mount(self, path: Path, size: str, *, ro: bool = False) -> Path:
        """A tmpfs at ``path`` (root ignores mode bits: a read-only *mount* is the test)."""
        path.mkdir(parents=True, exist_ok=True)
        opts = f"{'ro,' if ro else ''}size={size}"
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (this row fakes a full or read-only disk)")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            pytest.skip(f"mount -t tmpfs not permitted here: {r.stderr.strip()}")

        def umount() -> None:
            if subprocess.run(["umount", str(path)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], check=False)

        self.stack.callback(umount)
        return path

    def archive(self, files: dict[str, bytes], *, compress: str = "xz",
                **faults: Any) -> FaultyServer:
        """A Debian archive on 127.0.0.1 with one kernel package holding ``files``."""
        deb = build_deb(self.path(f"work/{PKG}_6.1.192-1_amd64.deb"), PKG, "6.1.192-1",
                        files, compress=compress)
        root = self.path("archive")
        debian_archive(root, "bookworm", [(deb, PKG, "6.1.192-1")])
        self.server = self.stack.enter_context(serve_faulty(root, **faults))
        self.env["BISECTOR_DEBIAN_ARCHIVES"] = f"{self.server.url}=bookworm"
        return self.server

    def spawn(self, argv: Argv) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-m", "bisector.cli", *argv], env=self.env,
                             cwd=self.tmp, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.stack.callback(_reap, p)
        return p

    def use_real_cache(self) -> str:
        """For the vm rows: the user's guest image and ``debian:6.1.0-56`` (downloaded
        once, by ``make test`` or ``bisector kernels fetch``), reached through symlinks
        from a temporary cache, served by a local archive on 127.0.0.1 (no network; the
        cached .deb matches its sha256, so nothing is downloaded)."""
        from bisector.image import recipe_dir, recipe_hash

        image = REAL_CACHE / "images" / f"bookworm-{recipe_hash(recipe_dir('bookworm'))}"
        debs = sorted((REAL_CACHE / "downloads").glob(f"{PKG}_*_amd64.deb"))
        if not (image / "rootfs.ext4").is_file() or not debs:
            pytest.skip(f"needs the guest image (make image) and {KERNEL} in {REAL_CACHE}")
        cache = self.path("vmcache")
        cache.mkdir()
        for sub in ("images", "kernels", "downloads", "vmlinux"):
            (REAL_CACHE / sub).mkdir(parents=True, exist_ok=True)
            (cache / sub).symlink_to(REAL_CACHE / sub)
        self.env["BISECTOR_CACHE"] = str(cache)
        deb = debs[-1]
        root = self.path("archive")
        pool = root / "pool" / "main" / "l" / "linux"
        pool.mkdir(parents=True)
        (pool / deb.name).symlink_to(deb)
        _packages_index(root, deb, version=deb.name.split("_")[1])
        self.server = self.stack.enter_context(serve_faulty(root))
        self.env["BISECTOR_DEBIAN_ARCHIVES"] = f"{self.server.url}=bookworm"
        return KERNEL


def _packages_index(root: Path, deb: Path, version: str) -> None:
    """``dists/bookworm`` for one package already in ``root/pool`` (not copied)."""
    h = hashlib.sha256()
    with deb.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    para = (f"Package: {PKG}\nVersion: {version}\nArchitecture: amd64\n"
            f"Filename: pool/main/l/linux/{deb.name}\nSize: {deb.stat().st_size}\n"
            f"SHA256: {h.hexdigest()}\n")
    pk = root / "dists" / "bookworm" / "main" / "binary-amd64" / "Packages.xz"
    pk.parent.mkdir(parents=True)
    pk.write_bytes(lzma.compress(para.encode()))
    digest = hashlib.sha256(pk.read_bytes()).hexdigest()
    (root / "dists" / "bookworm" / "Release").write_text(
        f"Suite: bookworm\nSHA256:\n {digest} {pk.stat().st_size} main/binary-amd64/Packages.xz\n")


def _reap(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.kill()
    p.wait()


def wait_for(what: str, cond: Callable[[], object], timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def parts(ctx: Ctx) -> list[Path]:
    return sorted((ctx.cache / "downloads").glob("*.part*"))


def run_dirs(root: Path) -> list[Path]:
    """Run directories under ``root`` (what :func:`bisector.paths.new_run_dir` makes)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()
                  and any((p / f).exists() for f in ("reproducer.yaml", "result.json",
                                                     "run.pid", "console.log")))


# ----------------------------------------------------------------------- the rows

@dataclass(frozen=True)
class Fault:
    id: str
    #: makes the fault in the row's context and returns the argv (after ``bisector``)
    setup: Callable[[Ctx], Argv]
    code: int
    #: a fragment of the one error line (of stdout when ``line`` is "")
    message: str
    #: how the one error line starts; "" for a verdict (no error line at all)
    line: str = "bisector: error: "
    #: a run directory that was made holds a complete result.json (a full disk: none)
    result_json: bool = True
    #: what happens while the command runs (a signal, a killed QEMU)
    during: Callable[[Ctx, subprocess.Popen[bytes]], None] | None = None
    #: further checks of this row
    check: Callable[[Ctx, str, str], None] | None = None
    marks: tuple[Any, ...] = ()


def _write(name: str, data: bytes) -> Callable[[Ctx], Path]:
    def make(ctx: Ctx) -> Path:
        p = ctx.path(f"repro/{name}.yaml")
        p.write_bytes(data)
        return p
    return make


def _copy(binary: str) -> Callable[[Ctx], Path]:
    def make(ctx: Ctx) -> Path:
        p = ctx.path("repro/r.yaml")
        shutil.copyfile(binary, p)
        return p
    return make


def _fifo(ctx: Ctx) -> Path:
    p = ctx.path("repro/fifo.yaml")
    os.mkfifo(p)
    return p


def _huge(ctx: Ctx) -> Path:
    p = ctx.path("repro/huge.yaml")
    with p.open("wb") as fh:
        fh.truncate(200 << 20)  # sparse: 200 MB that take no room
    return p


def _yaml(extra: str = "", run: str = "true", name: str = "r",
          prepare: Callable[[Path], None] | None = None) -> Callable[[Ctx], Path]:
    def make(ctx: Ctx) -> Path:
        path = ctx.repro(name, extra.replace("@TMP@", str(ctx.tmp)),
                         run.replace("@TMP@", str(ctx.tmp)))
        if prepare is not None:
            prepare(path.parent)
        return path
    return make


def _symlink_out(folder: Path) -> None:
    (folder / "passwd").symlink_to("/etc/passwd")


def _binary_source(folder: Path) -> None:
    (folder / "blob.bin").write_bytes(Path(sys.executable).read_bytes()[:4096])


def _fifo_source(folder: Path) -> None:
    os.mkfifo(folder / "pipe")


def _wrong_name(ctx: Ctx) -> Path:
    p = ctx.repro("r")
    p.write_text(p.read_text().replace("name: r\n", "name: other\n", 1))
    return p


def _no_marker(ctx: Ctx, out: str, err: str) -> None:
    assert not (ctx.tmp / "MARKER").exists(), "the template ran a host command"


#: (id, makes the reproducer file, fragment of the error) — each checked by `run` (129)
#: and by `repro validate` (1): the reproducer is loaded before any kernel is touched
REPRO_FAULTS: list[tuple[str, Callable[[Ctx], Path], str, Any]] = [
    ("non-utf8", _write("r", b"name: r\ntitle: caf\xe9\nrun: []\n"), "not UTF-8 text (byte 18",
     None),
    ("elf-binary", _copy("/bin/true"), "not UTF-8 text", None),
    ("dev-zero", lambda ctx: Path("/dev/zero"), "/dev/zero is not a regular file", None),
    ("fifo", _fifo, "fifo.yaml is not a regular file", None),
    ("200MB-sparse", _huge, "is 209715200 bytes, over the 1048576-byte limit", None),
    ("template-popen", _yaml(run="{{ cycler.__init__.__globals__.os.popen("
                                 "'touch @TMP@/MARKER').read() }}"),
     "field 'run[0].run': refused by the template sandbox", _no_marker),
    ("template-lipsum-globals", _yaml(run="{{ lipsum.__globals__ }}"),
     "field 'run[0].run': template error: 'lipsum' is undefined", None),
    ("template-zero-division", _yaml("params: {n: 0}", run="{{ 1 / n }}"),
     "field 'run[0].run': template failed: ZeroDivisionError", None),
    ("files-path-empty", _yaml('files: [{path: "", content: x}]'),
     "field 'files[0]': Value error, 'path' must name a file", None),
    ("files-path-dot", _yaml('files: [{path: ".", content: x}]'),
     "field 'files[0]': Value error, 'path' must name a file", None),
    ("timeout-inf", _yaml("timeout: .inf"), "field 'timeout': Input should be a finite number",
     None),
    ("name-not-file-name", _wrong_name, "'other' does not match the file name (expected 'r')",
     None),
    ("duplicate-key", _yaml("title: twice"), "line 3: invalid YAML: duplicate key 'title'",
     None),
    ("source-dotdot-shadow", _yaml("files: [{path: a, source: ../../../../etc/shadow}]"),
     "field 'files[0].source': '../../../../etc/shadow' leaves the reproducer's folder", None),
    ("source-absolute", _yaml("files: [{path: a, source: /etc/passwd}]"),
     "field 'files[0].source': '/etc/passwd' is absolute", None),
    ("source-symlink-out", _yaml("files: [{path: a, source: passwd}]", prepare=_symlink_out),
     "field 'files[0].source': 'passwd' leaves the reproducer's folder", None),
    ("source-binary-templated", _yaml("files: [{path: a, source: blob.bin}]",
                                      prepare=_binary_source),
     "field 'files[0].source': blob.bin is not UTF-8 text; set 'template: false'", None),
    # not in the first list of faults:
    ("source-fifo", _yaml("files: [{path: a, source: pipe}]", prepare=_fifo_source),
     "/repro/pipe is not a regular file", None),
    ("yaml-alias", _yaml("params: &p {a: 1}\ndescription: *p"),
     "anchors and aliases are not allowed", None),
    ("yaml-nested-deep", _write("r", b"name: r\nparams: " + b"[" * 50000 + b"\n"),
     "nested too deeply", None),
    ("template-huge-power", _yaml(run="{{ 9 ** 99999999 }}"),
     "field 'run[0].run': refused by the template sandbox", None),
    ("template-huge-repeat", _yaml(run="{{ 'x' * 2 ** 60 }}"),
     "field 'run[0].run': refused by the template sandbox: repeating 1 items", None),
    ("template-huge-width", _yaml(run="{{ 'x'.rjust(2000000000) }}"),
     "field 'run[0].run': rendering needs more than 1024 MiB of memory", None),
    ("template-huge-filter", _yaml(run="{{ 'x' | center(2000000000) }}"),
     "field 'run[0].run': rendering needs more than 1024 MiB of memory", None),
]


def _via_run(make: Callable[[Ctx], Path]) -> Callable[[Ctx], Argv]:
    return lambda ctx: ctx.run_argv(make(ctx))


def _via_validate(make: Callable[[Ctx], Path]) -> Callable[[Ctx], Argv]:
    return lambda ctx: ["repro", "validate", str(make(ctx))]


_NESTED_LOOPS = _yaml(run="{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}"
                          "{% endfor %}{% endfor %}")


def _repro_rows() -> list[Fault]:
    rows = [
        # validate only: this row takes the whole time budget of a rendered field (10 s)
        Fault("validate-template-nested-loops", _via_validate(_NESTED_LOOPS), 1,
              "field 'run[0].run': rendering takes longer than 10s", line="error: "),
    ]
    for rid, make, message, check in REPRO_FAULTS:
        rows.append(Fault(f"run-{rid}", _via_run(make), 129, message, check=check))
        rows.append(Fault(f"validate-{rid}", _via_validate(make), 1, message, line="error: ",
                          check=check))
    return rows


# --- host paths -------------------------------------------------------------------

def _run_dir_is_file(ctx: Ctx) -> Argv:
    f = ctx.path("a-file")
    f.write_text("x")
    return ctx.run_argv(ctx.repro(), KERNEL, "--run-dir", str(f))


def _run_dir_under_file(ctx: Ctx) -> Argv:
    f = ctx.path("a-file")
    f.write_text("x")
    return ctx.run_argv(ctx.repro(), KERNEL, "--run-dir", str(f / "runs"))


def _runs_env_is_file(ctx: Ctx) -> Argv:
    f = ctx.path("a-file")
    f.write_text("x")
    ctx.env["BISECTOR_RUNS"] = str(f)
    return ctx.run_argv(ctx.repro())


def _run_dir_read_only(ctx: Ctx) -> Argv:
    ro = ctx.mount(ctx.tmp / "ro", "1m", ro=True)
    return ctx.run_argv(ctx.repro(), KERNEL, "--run-dir", str(ro))


def _home_read_only(ctx: Ctx) -> Argv:
    home = ctx.mount(ctx.tmp / "home", "1m", ro=True)
    for var in ("BISECTOR_RUNS", "XDG_STATE_HOME"):
        ctx.env.pop(var, None)
    ctx.env["HOME"] = str(home)
    return ctx.run_argv(ctx.repro())


def _cache_is_file(ctx: Ctx) -> Argv:
    f = ctx.path("cache-file")
    f.write_text("x")
    ctx.env["BISECTOR_CACHE"] = str(f)
    ctx.archive({f"boot/vmlinuz-{REL}": fake_kernel(b"k")})
    return ctx.run_argv(ctx.repro())


# --- disk full --------------------------------------------------------------------

def _cache_tiny(ctx: Ctx) -> Argv:
    ctx.env["BISECTOR_CACHE"] = str(ctx.mount(ctx.tmp / "cache", "4m"))
    ctx.archive({f"boot/vmlinuz-{REL}": fake_kernel(b"k")})
    return ctx.run_argv(ctx.repro())


def _cache_filled_while_downloading(ctx: Ctx) -> Argv:
    """The download's free-space check passes; then another process fills the disk."""
    cache = ctx.mount(ctx.tmp / "cache", "72m")
    ctx.env["BISECTOR_CACHE"] = str(cache)
    ctx.archive({f"boot/vmlinuz-{REL}": fake_kernel(b"k"), "usr/share/noise": os.urandom(4 << 20)},
                compress="none", before=lambda path: fill(cache, leave=1 << 20))
    return ctx.run_argv(ctx.repro())


def _unpack_does_not_fit(ctx: Ctx) -> Argv:
    """A 100 KB .deb that unpacks to 100 MB: more than 4 × its size + 64 MiB."""
    ctx.env["BISECTOR_CACHE"] = str(ctx.mount(ctx.tmp / "cache", "72m"))
    ctx.archive({f"boot/vmlinuz-{REL}": fake_kernel(b"k"), "usr/share/zeros": bytes(100 << 20)},
                compress="gzip")
    return ctx.run_argv(ctx.repro())


def _run_dir_full(ctx: Ctx) -> Argv:
    full = ctx.run_dir_parent(ctx.mount(ctx.tmp / "full", "2m"))
    fill(full)
    return ctx.run_argv(ctx.repro(), KERNEL, "--run-dir", str(full))


def _no_empty_result(ctx: Ctx, out: str, err: str) -> None:
    for d in run_dirs(ctx.tmp / "full"):
        res = d / "result.json"
        assert not res.exists() or res.stat().st_size > 0, f"empty {res}"


# --- CLI values ------------------------------------------------------------------

def _no_campaign(ctx: Ctx, out: str, err: str) -> None:
    """Arguments wrong before anything ran: no campaign recorded (README)."""
    db = Path(ctx.env["BISECTOR_RUNS"]).parent / "bisector.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM campaigns").fetchone() == (0,)
    assert not list(Path(ctx.env["BISECTOR_RUNS"]).glob("campaign-*"))


def _bisect(ctx: Ctx, *terms: str) -> Argv:
    tree = ctx.path("tree")
    tree.mkdir()
    return ["bisect", "--repro", str(GRE), "--tree", str(tree), "--good", "v1", "--bad", "v2",
            *terms]


# --- kernels that are not kernels -------------------------------------------------

def _not_a_bzimage(ctx: Ctx) -> Path:
    return build_deb(ctx.path(f"work/{PKG}_1_amd64.deb"), PKG, "1",
                     {f"boot/vmlinuz-{REL}": b"not a kernel"})  # 12 bytes


def _is_skip(ctx: Ctx, out: str, err: str) -> None:
    assert "not a kernel image" in out, out
    [d] = run_dirs(ctx.tmp / "runs")
    res = json.loads((d / "result.json").read_text())
    assert res["verdict"] == "skip" and "not a kernel image" in res["reason"]
    assert "not a kernel image" in (d / "untestable.txt").read_text()


# --- signals during a download that hangs ------------------------------------------

def _stuck_download(half: bool) -> Callable[[Ctx], Argv]:
    def setup(ctx: Ctx) -> Argv:
        ctx.archive({f"boot/vmlinuz-{REL}": fake_kernel(b"k" * 4096)},
                    stall=lambda n: True, half=half)
        return ctx.run_argv(ctx.repro())
    return setup


def _signal(sig: signal.Signals, half: bool = True) -> Callable[[Ctx, subprocess.Popen[bytes]],
                                                                  None]:
    def during(ctx: Ctx, p: subprocess.Popen[bytes]) -> None:
        if signal.getsignal(sig) is signal.SIG_IGN:  # e.g. SIGINT under `make test &`
            pytest.skip(f"{sig.name} is ignored by this process, so by the CLI it starts")
        assert ctx.server is not None
        wait_for("the .deb request to hang", ctx.server.stalled.is_set)
        if half:
            wait_for("the .part file", lambda: parts(ctx))
        time.sleep(0.2)
        p.send_signal(sig)
    return during


def _interrupted(ctx: Ctx, out: str, err: str) -> None:
    [d] = run_dirs(ctx.tmp / "runs")
    res = json.loads((d / "result.json").read_text())
    assert res["verdict"] is None and "KeyboardInterrupt" in res["error"]


def _killed_then_next_run(ctx: Ctx) -> Argv:
    """kill -9 a run stuck in its download; the next run into the same parent
    (the .deb served this time: a 12-byte "kernel", SKIP) finds it dead."""
    parent = ctx.run_dir_parent(ctx.tmp / "shared-runs")
    ctx.archive({f"boot/vmlinuz-{REL}": b"not a kernel" * 400}, stall=lambda n: n == 1,
                half=True)
    repro = ctx.repro()
    first = ctx.spawn(ctx.run_argv(repro, KERNEL, "--run-dir", str(parent)))
    assert ctx.server is not None
    wait_for("the .deb request to hang", ctx.server.stalled.is_set)
    wait_for("the .part file", lambda: parts(ctx))
    [killed] = run_dirs(parent)
    ctx.expect["killed"] = killed
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    return ctx.run_argv(repro, KERNEL, "--run-dir", str(parent))


def _reaped(ctx: Ctx, out: str, err: str) -> None:
    killed: Path = ctx.expect["killed"]
    res = json.loads((killed / "result.json").read_text())
    assert res["status"] == "killed", res
    assert not (killed / "overlay.qcow2").exists()


# --- the VM (vm rows: a real kernel and the real guest image) ----------------------

def _qemu_false(ctx: Ctx) -> Argv:
    kernel = ctx.use_real_cache()
    ctx.env["BISECTOR_QEMU"] = "/bin/false"
    parent = ctx.run_dir_parent(ctx.tmp / "vmruns")
    return ctx.run_argv(ctx.repro(), kernel, "--accel", "tcg", "--run-dir", str(parent))


def _qemu_killed_setup(ctx: Ctx) -> Argv:
    kernel = ctx.use_real_cache()
    parent = ctx.run_dir_parent(ctx.tmp / "vmruns")
    return ctx.run_argv(ctx.repro(run="echo started; sleep 60"), kernel, "--accel", "tcg",
                        "--run-dir", str(parent), "--boot-timeout", "300")


def _kill_qemu(ctx: Ctx, p: subprocess.Popen[bytes]) -> None:
    parent = ctx.tmp / "vmruns"
    wait_for("the run directory", lambda: run_dirs(parent))
    [run_dir] = run_dirs(parent)
    transcript = run_dir / "ssh-transcript.log"
    wait_for("the test step to start", lambda: transcript.exists()
             and "$ [run] step" in transcript.read_text(errors="replace"), timeout=400)
    time.sleep(1.0)
    pids = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True,
                          check=False).stdout.split()
    assert pids, "no QEMU process for the run directory"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)


# --- sweep configs ------------------------------------------------------------------

def _sweep(body: str) -> Callable[[Ctx], Argv]:
    """A sweep config (``{GRE}`` and ``{tmp}`` substituted) → the sweep argv."""
    def make(ctx: Ctx) -> Argv:
        path = ctx.path("sweep.yaml")
        path.write_text(body.replace("{GRE}", str(GRE)).replace("{tmp}", str(ctx.tmp)))
        return ["sweep", "--config", str(path)]
    return make


_SWEEP_OK_REPRO = "reproducers:\n  - glob: {GRE}\n"
_SWEEP_DEBIAN = "kernels:\n  d61:\n    debian: {series: '6.1', newest: 2}\n"


def _no_sweep(ctx: Ctx, out: str, err: str) -> None:
    """Input wrong: nothing recorded (no sweep row) and no results written."""
    db = Path(ctx.env["BISECTOR_RUNS"]).parent / "bisector.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "sweeps" in tables:
                assert conn.execute("SELECT COUNT(*) FROM sweeps").fetchone() == (0,)
    assert not list(ctx.tmp.glob("sweep-results/sweep-*"))


def _sweep_locked(ctx: Ctx) -> Argv:
    import fcntl

    argv = _sweep(_SWEEP_DEBIAN + _SWEEP_OK_REPRO)(ctx)
    (ctx.tmp / "sweep-results").mkdir()
    fh = (ctx.tmp / "sweep-results" / ".sweep.lock").open("a+")
    fh.write("4242")
    fh.flush()
    fcntl.flock(fh, fcntl.LOCK_EX)
    ctx.stack.callback(fh.close)
    return argv


def _sweep_disk_tiny(ctx: Ctx) -> Argv:
    """Results on a 4 MiB file system: refused before a cell runs (or a row is written)."""
    argv = _sweep(_SWEEP_DEBIAN + _SWEEP_OK_REPRO)(ctx)
    ctx.mount(ctx.tmp / "sweep-results", "4m")
    return argv


SWEEP_FAULTS: list[Fault] = [
    Fault("sweep-results-disk-tiny", _sweep_disk_tiny, 3, "MiB free, a sweep needs about",
          line="bisector: infrastructure error: ", check=_no_sweep),
    Fault("sweep-unknown-key", _sweep(_SWEEP_DEBIAN + _SWEEP_OK_REPRO + "nightly: true\n"), 2,
          "sweep.yaml: unknown key 'nightly'", check=_no_sweep),
    Fault("sweep-unknown-key-deep", _sweep(
        "kernels:\n  d61:\n    debian: {series: '6.1', newset: 2}\n" + _SWEEP_OK_REPRO), 2,
        "unknown key 'kernels.d61.debian.newset'", check=_no_sweep),
    Fault("sweep-kernel-set-two-kinds", _sweep(
        "kernels:\n  x:\n    debian: {series: '6.1'}\n    local: {dir: .}\n"
        + _SWEEP_OK_REPRO), 2, "exactly one of debian, ubuntu, git, local", check=_no_sweep),
    Fault("sweep-no-kernel-sets", _sweep("kernels: {}\n" + _SWEEP_OK_REPRO), 2,
          "field 'kernels'", check=_no_sweep),
    Fault("sweep-empty-kernel-set", _sweep(
        "kernels:\n  mine:\n    local: {dir: {tmp}}\n" + _SWEEP_OK_REPRO), 2,
        "kernels.mine: resolves to no kernels", check=_no_sweep),
    Fault("sweep-glob-matches-nothing", _sweep(
        _SWEEP_DEBIAN + "reproducers:\n  - glob: nothere/*.yaml\n"), 2,
        "field 'reproducers[0].glob': 'nothere/*.yaml' matches no reproducer file",
        check=_no_sweep),
    Fault("sweep-unknown-param", _sweep(
        _SWEEP_DEBIAN + "reproducers:\n  - glob: {GRE}\n    params: {hot: {nope: 1}}\n"), 2,
        "field 'reproducers[0].params.hot'", check=_no_sweep),
    Fault("sweep-archive-unreachable", _sweep(_SWEEP_DEBIAN + _SWEEP_OK_REPRO), 3,
          "kernels.d61: cannot list its kernels", line="bisector: infrastructure error: ",
          check=_no_sweep),
    Fault("sweep-config-not-yaml", _sweep("kernels: [\n"), 2, "invalid YAML",
          check=_no_sweep),
    Fault("sweep-scheduler-not-an-address", lambda ctx: [
        *_sweep(_SWEEP_DEBIAN + _SWEEP_OK_REPRO)(ctx), "--scheduler", "localhost:8786"], 2,
        "argument --scheduler: 'localhost:8786': expected an address like tcp://HOST:8786",
        check=_no_sweep),
    Fault("sweep-config-scheduler-unreachable", _sweep(
        _SWEEP_DEBIAN + _SWEEP_OK_REPRO + "scheduler: tcp://127.0.0.1:9\n"), 3,
        "Dask scheduler tcp://127.0.0.1:9: cannot connect",
        line="bisector: infrastructure error: ", check=_no_sweep),
    Fault("run-scheduler-unreachable", lambda ctx: [
        *ctx.run_argv(GRE), "--scheduler", "tcp://127.0.0.1:9"], 131,
        "Dask scheduler tcp://127.0.0.1:9: cannot connect",
        line="bisector: infrastructure error: "),
    Fault("sweep-password-env-not-ours", _sweep(
        _SWEEP_DEBIAN + _SWEEP_OK_REPRO + "notify:\n  email: {from: a@b.c, to: [d@e.f], "
        "username: u, password_env: AWS_SECRET_ACCESS_KEY}\n"), 2,
        "field 'notify.email.password_env': String should match pattern", check=_no_sweep),
    Fault("sweep-git-remote-is-an-option", _sweep(
        "kernels:\n  t:\n    git: {tree: {tmp}, branches: [main], fetch: true, "
        "remote: '--upload-pack=touch {tmp}/pwned'}\n" + _SWEEP_OK_REPRO), 2,
        "field 'kernels.t.git.remote': String should match pattern", check=_no_sweep),
    Fault("sweep-git-branch-is-an-option", _sweep(
        "kernels:\n  t:\n    git: {tree: {tmp}, branches: ['--output=x']}\n"
        + _SWEEP_OK_REPRO), 2, "field 'kernels.t.git.branches[0]'", check=_no_sweep),
    Fault("sweep-locked", _sweep_locked, 75, "another sweep of 'sweep' is running (pid 4242",
          line="bisector: ", check=_no_sweep),
]


FAULTS: list[Fault] = [
    *_repro_rows(),
    *SWEEP_FAULTS,
    # host paths
    Fault("run-dir-is-a-file", _run_dir_is_file, 129, "Not a directory"),
    Fault("run-dir-under-a-file", _run_dir_under_file, 129, "Not a directory"),
    Fault("BISECTOR_RUNS-is-a-file", _runs_env_is_file, 129, "Not a directory"),
    Fault("run-dir-read-only", _run_dir_read_only, 129, "Read-only file system"),
    Fault("HOME-read-only-no-BISECTOR_RUNS", _home_read_only, 129, "Read-only file system"),
    Fault("BISECTOR_CACHE-is-a-file", _cache_is_file, 129, "Not a directory"),
    # disk full
    Fault("cache-tiny-tmpfs", _cache_tiny, 131, "MiB free, downloading",
          line="bisector: infrastructure error: "),
    Fault("cache-filled-during-download", _cache_filled_while_downloading, 131,
          "no space left on device while downloading", line="bisector: infrastructure error: "),
    Fault("cache-unpack-does-not-fit", _unpack_does_not_fit, 131,
          "no space left on device while unpacking", line="bisector: infrastructure error: "),
    Fault("run-dir-on-full-disk", _run_dir_full, 131, "no space left on device",
          line="bisector: infrastructure error: ", result_json=False, check=_no_empty_result),
    # CLI values
    Fault("boot-timeout-negative", lambda ctx: ctx.run_argv(GRE, KERNEL, "--boot-timeout", "-5"),
          129, "argument --boot-timeout: '-5'"),
    Fault("boot-timeout-nan", lambda ctx: ctx.run_argv(GRE, KERNEL, "--boot-timeout", "nan"),
          129, "argument --boot-timeout: 'nan'"),
    Fault("memory-zero", lambda ctx: ctx.run_argv(GRE, KERNEL, "--memory", "0"), 129,
          "argument --memory: 0 is not between"),
    Fault("term-with-space", lambda ctx: _bisect(ctx, "--term-old", "x y"), 2,
          "argument --term-old: 'x y' cannot be a bisect term", check=_no_campaign),
    Fault("term-git-word", lambda ctx: _bisect(ctx, "--term-new", "reset"), 2,
          "argument --term-new: 'reset' cannot be a bisect term", check=_no_campaign),
    Fault("terms-git-refuses", lambda ctx: _bisect(ctx, "--term-old", "bad", "--term-new",
                                                   "fixed"), 2, "bisect terms 'bad'/'fixed'",
          check=_no_campaign),
    # kernels that are not kernels
    Fault("run-kernel-not-a-bzimage",
          lambda ctx: ctx.run_argv(ctx.repro(), f"local:{_not_a_bzimage(ctx)}"), 125,
          "SKIP: kernel local:", line="", check=_is_skip),
    Fault("fetch-kernel-not-a-bzimage",
          lambda ctx: ["kernels", "fetch", f"local:{_not_a_bzimage(ctx)}"], 2,
          "cannot be tested: kernel local:"),
    # signals while a download hangs
    Fault("sigterm-no-answer", _stuck_download(half=False), 130, "interrupted",
          line="bisector: ", during=_signal(signal.SIGTERM, half=False), check=_interrupted),
    Fault("sigterm-mid-download", _stuck_download(half=True), 130, "interrupted",
          line="bisector: ", during=_signal(signal.SIGTERM), check=_interrupted),
    Fault("sighup-mid-download", _stuck_download(half=True), 130, "interrupted",
          line="bisector: ", during=_signal(signal.SIGHUP), check=_interrupted),
    Fault("sigint-mid-download", _stuck_download(half=True), 130, "interrupted",
          line="bisector: ", during=_signal(signal.SIGINT), check=_interrupted),
    Fault("sigkill-then-next-run-reaps", _killed_then_next_run, 125, "not a kernel image",
          line="", check=_reaped),
    # the VM
    Fault("qemu-is-bin-false", _qemu_false, 131, "qemu exited 1",
          line="bisector: infrastructure error: ", marks=(pytest.mark.vm,)),
    Fault("qemu-killed-after-ssh", _qemu_killed_setup, 131, "qemu was killed by signal 9",
          line="bisector: infrastructure error: ", during=_kill_qemu,
          marks=(pytest.mark.vm,)),
]


# ----------------------------------------------------------------------- the checks

#: what every result.json holds (bisector.runner.RunResult)
RESULT_KEYS = {"kernel", "reproducer", "run_dir", "verdict", "error", "phases"}


def left_behind(ctx: Ctx, fault: Fault) -> list[str]:
    """What the command left that it should not have (empty: nothing)."""
    found = []
    for root in {ctx.cache, *ctx.roots}:
        if not root.exists() or root.is_file():
            continue
        for p in root.rglob("*"):
            if p.is_symlink():
                continue
            if p.name.endswith(".tmp") or ".part" in p.name:
                found.append(f"litter: {p}")
            if p.name.startswith("bisector-traceback-"):
                found.append(f"a bug's traceback: {p}")
    for root in ctx.roots:
        for d in run_dirs(root):
            res = d / "result.json"
            if (d / "run.pid").exists():
                found.append(f"run.pid left in {d} by a process that has ended")
            if not res.exists():
                if fault.result_json:
                    found.append(f"no result.json in {d}")
                continue
            try:
                data = json.loads(res.read_text())
            except ValueError:
                found.append(f"{res}: not JSON: {res.read_text()[:80]!r}")
                continue
            missing = sorted(RESULT_KEYS - set(data))
            if missing:
                found.append(f"{res}: incomplete, no {', '.join(missing)}: {data}")
            elif data["verdict"] is None and not data["error"]:
                found.append(f"{res}: neither a verdict nor an error: {data}")
    qemu = subprocess.run(["pgrep", "-af", "qemu"], capture_output=True, text=True,
                          check=False).stdout
    found += [f"QEMU still running: {ln}" for ln in qemu.splitlines() if str(ctx.tmp) in ln]
    return found


@pytest.fixture
def ctx(tmp_path: Path, tmp_cache: Path) -> Iterator[Ctx]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BISECTOR_", "XDG_")) or k in ("BISECTOR_CACHE",
                                                              "BISECTOR_RUNS")}
    env.update(BISECTOR_DEBIAN_ARCHIVES=f"{DEAD}=bookworm", BISECTOR_DEBIAN_KEYRING="none",
               BISECTOR_UBUNTU_MAINLINE_URL=DEAD, PYTHONUNBUFFERED="1")
    with ExitStack() as stack:
        c = Ctx(tmp=tmp_path, env=env, stack=stack)
        c.roots.append(tmp_path / "runs")
        yield c


@pytest.mark.parametrize("fault", [pytest.param(f, id=f.id, marks=f.marks) for f in FAULTS])
def test_fault(fault: Fault, ctx: Ctx) -> None:
    argv = fault.setup(ctx)
    out_f, err_f = ctx.path("out.txt"), ctx.path("err.txt")
    with out_f.open("wb") as out, err_f.open("wb") as err:
        p = subprocess.Popen([sys.executable, "-m", "bisector.cli", *argv], env=ctx.env,
                             cwd=ctx.tmp, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        code: int | None = None
        try:
            if fault.during is not None:
                fault.during(ctx, p)
            code = p.wait(timeout=TIMEOUT if fault.during is None else TIMEOUT + 400)
        except subprocess.TimeoutExpired:
            pass
        finally:
            _reap(p)
    stdout, stderr = out_f.read_text(errors="replace"), err_f.read_text(errors="replace")
    shown = f"$ bisector {' '.join(argv)}\n--- exit {code}\n--- stdout\n{stdout}" \
            f"--- stderr\n{stderr}"
    assert code is not None, f"hung: killed after {TIMEOUT:.0f}s\n{shown}"
    assert code == fault.code, shown
    assert "Traceback" not in stdout + stderr, shown
    errors = [ln for ln in stderr.splitlines() if ln.startswith(("bisector: ", "error: "))]
    if fault.line:
        assert len(errors) == 1, shown
        assert errors[0].startswith(fault.line) and fault.message in errors[0], shown
    else:
        assert errors == [] and fault.message in stdout, shown
    if fault.check is not None:
        fault.check(ctx, stdout, stderr)
    left = left_behind(ctx, fault)
    assert not left, shown + "--- left behind\n" + "\n".join(left)


def test_every_row_is_named_once() -> None:
    ids = [f.id for f in FAULTS]
    assert len(ids) == len(set(ids))
