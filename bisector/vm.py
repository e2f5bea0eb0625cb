"""QEMU guests: argv as a list, accel auto (KVM → TCG), always torn down.

The argv is built by a pure function (:func:`qemu_argv`) so tests can check
it without QEMU.  :class:`VM` owns one guest: a throw-away qcow2 overlay over
the shared image, the serial console written to the run's ``console.log``,
SSH forwarded from 127.0.0.1 only, a boot watchdog, and a ``finally`` that
kills QEMU whatever happens (exception, Ctrl-C; PR_SET_PDEATHSIG covers
``kill -9`` of bisector itself).  Under TCG a kernel with a PVH entry is
booted from its uncompressed vmlinux (:func:`direct_boot_kernel`), which
skips the guest-side decompressor, the slowest part of an emulated boot.

Boot trouble is not a verdict and not an infrastructure error either: it is
:class:`BootFailure`, an :class:`~bisector.errors.Untestable` that the runner
turns into SKIP ("this kernel cannot be tested") with the console log kept.
Only a guest that is not up yet is waited for: a guest presenting the wrong
SSH host key, like any other infrastructure error, stops the run.
"""

from __future__ import annotations

import bz2
import contextlib
import dataclasses
import enum
import hashlib
import json
import logging
import lzma
import mmap
import os
import socket
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import paramiko

from . import proc
from .errors import InfraError, Untestable
from .kernel.bootfiles import read_bzimage_header
from .paths import cache_dir, locked
from .verdict import find_crash

log = logging.getLogger(__name__)

QEMU = os.environ.get("BISECTOR_QEMU", "qemu-system-x86_64")
READY_MARKER = "bisector-init: starting sshd"
#: what sshd -e prints on the console once its socket listens (connecting earlier only
#: gets a reset from slirp, and paramiko logs each such attempt as an error)
SSHD_LISTENING = "Server listening on "
T = TypeVar("T")

#: what connecting to a guest that is still booting raises, and only that is retried:
#: refused/reset while QEMU's forward has no sshd behind it (slirp accepts, then closes:
#: "Error reading SSH protocol banner", EOFError, ConnectionResetError), connect and
#: banner timeouts (TimeoutError), NoValidConnectionsError (an OSError).  A host-key
#: problem is an SSHException too, and is singled out before this (see wait_ready).
NOT_READY_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, paramiko.SSHException)


class Accel(enum.Enum):
    KVM = "kvm"
    TCG = "tcg"


class BootFailure(Untestable):
    """The kernel did not reach SSH: panic, early exit, or watchdog deadline.

    Untestable, so whoever handles "this kernel cannot be tested" (SKIP)
    handles it too; the console log is its evidence (``log_path``).
    """

    def __init__(self, reason: str, console: Path | None = None) -> None:
        super().__init__(reason, console)

    @property
    def reason(self) -> str:
        return str(self)

    @property
    def console(self) -> Path | None:
        """The console log (the same path as ``log_path``)."""
        return self.log_path


@dataclass(frozen=True)
class Disk:
    path: Path
    fmt: str
    readonly: bool = False


@dataclass(frozen=True)
class Machine:
    """Everything that determines the QEMU command line."""

    kernel: Path
    cmdline: str
    console_log: Path
    ssh_port: int
    accel: Accel
    disks: tuple[Disk, ...] = ()
    initrd: Path | None = None
    memory_mb: int = 1024
    cpus: int = 2
    pidfile: Path | None = None
    #: False: no NIC and no port forward (the KVM probe only watches the console);
    #: ``ssh_port`` is then unused
    network: bool = True
    #: the guest may open connections out (to the host's 10.0.2.2 = its loopback, and
    #: beyond): only for a reproducer that declares ``requires: {network: true}``.
    #: Otherwise slirp runs with ``restrict=on``: the forwarded SSH port is all there is.
    outside: bool = False


def qemu_argv(m: Machine, qemu: str | None = None) -> list[str]:
    """The QEMU command line for ``m``: the one place it is made (boots and the KVM probe)."""
    argv = [qemu or QEMU, "-name", "bisector-guest", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot"]
    if m.accel is Accel.KVM:
        argv += ["-accel", "kvm", "-cpu", "host"]
    else:
        argv += ["-accel", "tcg", "-cpu", "max"]
    # q35, not pc: on pc (PIIX) the guest spends ~0.2 s (TCG) evaluating ACPI for each
    # PCI interrupt link a virtio device enables; q35's GSI links take ~0.02 s
    argv += ["-machine", "q35", "-m", str(m.memory_mb), "-smp", str(m.cpus)]
    argv += ["-kernel", str(m.kernel), "-append", m.cmdline]
    if m.initrd is not None:
        argv += ["-initrd", str(m.initrd)]
    argv += ["-chardev", f"file,id=con0,path={m.console_log}", "-serial", "chardev:con0"]
    for d in m.disks:
        opts = f"file={d.path},if=virtio,format={d.fmt},cache=unsafe"
        if d.readonly:
            opts += ",readonly=on"
        argv += ["-drive", opts]
    if m.network:
        restrict = "" if m.outside else "restrict=on,"
        argv += ["-netdev", f"user,id=net0,{restrict}hostfwd=tcp:127.0.0.1:{m.ssh_port}-:22",
                 "-device", "virtio-net-pci,netdev=net0"]
    argv += ["-device", "virtio-rng-pci"]
    if m.pidfile is not None:
        argv += ["-pidfile", str(m.pidfile)]
    return argv


def kernel_cmdline(*, extra: str = "", initrd: bool = False) -> str:
    # cryptomgr.notests: the crypto self-tests cost ~0.9 s of TCG time per boot; a
    # reproducer that wants them appends cryptomgr.notests=0 (the last value wins)
    parts = ["console=ttyS0,115200", "panic=-1", "net.ifnames=0", "biosdevname=0",
             "init=/sbin/bisector-init", "random.trust_cpu=on", "mitigations=off",
             "cryptomgr.notests"]
    if not initrd:
        parts += ["root=/dev/vda", "rw", "rootfstype=ext4"]
    if extra:
        parts.append(extra)
    return " ".join(parts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ direct (PVH) boot

#: XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit PVH entry point QEMU needs to boot an ELF vmlinux
_PVH_NOTE = 18
_ELF_MAGIC = b"\x7fELF"


def has_pvh_entry(head: bytes | mmap.mmap) -> bool:
    """Whether an ELF64 image carries a PVH entry note (QEMU's ``-kernel`` can boot it)."""
    if len(head) < 64 or head[:4] != _ELF_MAGIC or head[4] != 2 or head[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", head, 32)
    phentsize, phnum = struct.unpack_from("<HH", head, 54)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 56 > len(head):
            return False
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", head, off)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, min(p_offset + p_filesz, len(head))
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", head, pos)
            name = head[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == _PVH_NOTE:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def _decompress(payload: bytes) -> bytes | None:
    """Decompress a bzImage payload on the host (None: a format we don't handle here)."""
    if payload.startswith(b"\x1f\x8b"):
        # one gzip member (its trailer holds the size the decompressor checks); stop there
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    if payload.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
    if payload.startswith(b"\x5d\x00\x00"):
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(payload)
    if payload.startswith(b"BZh"):
        return bz2.BZ2Decompressor().decompress(payload)
    if payload.startswith(b"\x28\xb5\x2f\xfd"):
        # kbuild appends the decompressed size, which zstd would take for a broken frame
        return proc.run_bytes(["zstd", "-dcq"], input=payload[:-4], timeout=120).stdout
    return None  # lz4, lzo: not worth a dependency; the bzImage still boots


def direct_boot_kernel(kernel: Path) -> Path | None:
    """An uncompressed ELF vmlinux with a PVH entry for ``kernel``, or None.

    Under TCG the guest needs ~5 s (of a ~14 s boot to SSH) just to run the
    bzImage's decompressor on a distro (XZ) kernel.  A kernel built with
    CONFIG_PVH has an ELF note that lets QEMU load the uncompressed vmlinux
    and jump straight to its entry: we decompress the payload once on the
    host (≈2 s, 66 MB for Debian's 6.1) and cache the ELF by the bzImage's
    hash.  Anything we cannot unpack, or a kernel without the note, boots the
    bzImage as before.
    """
    try:
        with kernel.open("rb") as fh:
            if fh.read(4) == _ELF_MAGIC:  # already a vmlinux (e.g. from a kernel build)
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    return kernel if has_pvh_entry(mm) else None
        data = kernel.read_bytes()
    except (OSError, ValueError):
        return None
    digest = hashlib.sha256(data).hexdigest()[:24]
    out_dir = cache_dir() / "vmlinux"
    out, none = out_dir / f"{digest}.elf", out_dir / f"{digest}.no-pvh"
    with locked(out):
        if out.exists():
            return out
        if none.exists():
            return None
        header = read_bzimage_header(data)
        payload = header.payload(data) if header is not None else None
        try:
            elf = _decompress(payload) if payload else None
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error,
                proc.CommandError) as exc:
            log.info("%s: cannot unpack the bzImage payload (%s); booting it as is",
                     kernel, exc)
            elf = None
        if elf is None or not has_pvh_entry(elf):
            none.write_text(f"{kernel}\n")
            return None
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(elf)
        tmp.rename(out)
        log.debug("%s: unpacked to %s for a direct (PVH) boot", kernel, out)
        return out


# ------------------------------------------------------------------ accel probe

def _probe_key() -> str:
    try:
        ver = proc.run([QEMU, "--version"], timeout=30).stdout.splitlines()[0]
    except (proc.CommandError, IndexError):
        ver = "unknown"
    uname = os.uname()
    return hashlib.sha256(f"{ver}|{uname.release}|{uname.version}".encode()).hexdigest()[:16]


def probe_accel(kernel: Path, want: str = "auto", *, deadline: float = 10.0,
                workdir: Path | None = None) -> tuple[Accel, str]:
    """Which accelerator to use, and why.

    ``auto`` boots ``kernel`` under KVM for up to ``deadline`` seconds and
    looks for the kernel's first console line; a KVM that exists but hangs
    (as on our CI machines) falls back to TCG.  The answer is cached per QEMU
    version and host kernel.
    """
    if want == "tcg":
        return Accel.TCG, "requested"
    if want == "kvm":
        return Accel.KVM, "requested"
    if want != "auto":
        raise InfraError(f"unknown accel {want!r} (auto, kvm, tcg)")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel.TCG, "/dev/kvm not usable"
    cache = cache_dir() / "accel-probe.json"
    key = _probe_key()
    if cache.exists():
        try:
            data = json.loads(cache.read_text())
            if data.get("key") == key:
                return Accel(data["accel"]), f"cached probe: {data['reason']}"
        except (ValueError, KeyError):
            pass
    accel, reason = _probe_kvm(kernel, deadline, workdir or cache_dir())
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "accel": accel.value, "reason": reason,
                                 "when": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    return accel, reason


#: the probe only needs the kernel's banner: no root, no init (it panics soon after)
PROBE_CMDLINE = ("console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 "
                 "rdinit=/bisector-probe root=/dev/null")


def probe_machine(kernel: Path, console_log: Path) -> Machine:
    """The short KVM probe boot: the same QEMU command line as a real boot under KVM
    (so a probe that passes speaks for it), minus disks and network, and small."""
    return Machine(kernel=kernel, cmdline=PROBE_CMDLINE, console_log=console_log, ssh_port=0,
                   accel=Accel.KVM, memory_mb=256, cpus=1, network=False)


def _probe_kvm(kernel: Path, deadline: float, workdir: Path) -> tuple[Accel, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "kvm-probe.console.log"
    log_path.unlink(missing_ok=True)
    p = proc.spawn(qemu_argv(probe_machine(kernel, log_path)))
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < deadline:
            text = log_path.read_text(errors="replace") if log_path.exists() else ""
            if "Linux version" in text:
                return Accel.KVM, f"KVM guest printed its banner in {time.monotonic() - t0:.1f}s"
            if p.poll() is not None:
                err = p.stderr.read().decode(errors="replace") if p.stderr else ""
                return Accel.TCG, f"KVM probe exited {p.returncode}: {err.strip()[:200]}"
            time.sleep(0.2)
        return Accel.TCG, f"KVM guest printed nothing in {deadline:.0f}s (hangs)"
    finally:
        proc.terminate(p, grace=1)


# ------------------------------------------------------------------ the VM

def _host_key_problem(exc: BaseException) -> bool:
    """Whether a raw paramiko error is about the server's host key (never retried).

    :meth:`bisector.guest.Guest.connect` already turns these into InfraError;
    this covers a ``connect`` that hands paramiko's errors through as they are.
    """
    return isinstance(exc, paramiko.BadHostKeyException) or (
        isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc))


@dataclass
class VM:
    machine: Machine
    run_dir: Path
    argv: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    exit_code: int | None = None

    def start(self) -> None:
        machine = self.machine
        if machine.accel is Accel.TCG:
            # skip the guest-side decompressor, the slowest part of a TCG boot
            elf = direct_boot_kernel(machine.kernel)
            if elf is not None:
                machine = dataclasses.replace(machine, kernel=elf)
        self.argv = qemu_argv(machine)
        (self.run_dir / "qemu.cmd").write_text(proc.quote(self.argv) + "\n")
        self.machine.console_log.touch()
        self._stderr = (self.run_dir / "qemu.stderr").open("wb")
        self.process = proc.spawn(self.argv, stderr=self._stderr)
        self.started = time.monotonic()

    def console(self, offset: int = 0) -> str:
        try:
            with self.machine.console_log.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def console_size(self) -> int:
        try:
            return self.machine.console_log.stat().st_size
        except FileNotFoundError:
            return 0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_qemu(self, settle: float = 0.0) -> None:
        """Raise InfraError when QEMU itself failed or was killed.

        ``settle``: wait that long for QEMU to exit first (after a lost SSH
        session the socket may close a moment before the process is reaped).

        With ``-no-reboot`` a guest that panics, resets or powers off makes QEMU
        exit 0: that is the kernel's doing (SKIP, or the bug).  Any other exit
        status, or death by a signal, is QEMU's (or someone killing it): never a
        verdict on the kernel."""
        if self.process is None:
            return
        if settle > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=settle)
        if self.process.poll() is None:
            return
        code = self.process.returncode
        if code == 0:
            return
        err = self._qemu_error()
        detail = f": {err.splitlines()[-1][:300]}" if err else ""
        what = (f"was killed by signal {-code}" if code < 0 else f"exited {code}")
        raise InfraError(f"qemu {what}{detail} (command: {self.run_dir / 'qemu.cmd'})")

    def _qemu_error(self) -> str:
        path = self.run_dir / "qemu.stderr"
        return path.read_text(errors="replace").strip() if path.exists() else ""

    def wait_ready(self, connect: Callable[[], T], deadline: float) -> T:
        """Poll until ``connect()`` succeeds; watch the console and QEMU meanwhile.

        Only :data:`NOT_READY_ERRORS` (what a guest still booting raises) are
        retried until ``deadline``, after which the kernel is :class:`BootFailure`.
        Anything else propagates at once: a host-key mismatch (as InfraError)
        means another server or the wrong image, and retrying it would only
        turn an infrastructure error into a SKIP after the whole deadline.
        """
        assert self.process is not None
        failures = 0
        marker_at: float | None = None
        last_err: Exception | None = None
        while True:
            elapsed = time.monotonic() - self.started
            text = self.console()
            crash = find_crash(text)
            if crash is not None:
                raise BootFailure(f"kernel crashed during boot: {crash}",
                                  self.machine.console_log)
            if not self.alive():
                self.check_qemu()
                last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:]
                raise BootFailure("guest stopped during boot (reset or power-off)"
                                  + (f"; last console line: {last[0][:200]}" if last else ""),
                                  self.machine.console_log)
            if elapsed > deadline:
                why = f" (last SSH error: {last_err})" if last_err else ""
                raise BootFailure(f"no SSH within {deadline:.0f}s{why}",
                                  self.machine.console_log)
            # Don't hammer sshd before our init says it is starting (fallback: half-time),
            # and connect as soon as sshd says it listens (fallback: 5 s after the marker).
            if marker_at is None and READY_MARKER in text:
                marker_at = elapsed
            if (marker_at is not None and (SSHD_LISTENING in text or elapsed - marker_at > 5)) \
                    or elapsed > deadline / 2:
                try:
                    return connect()
                except NOT_READY_ERRORS as exc:
                    if _host_key_problem(exc):
                        raise InfraError(f"guest presented an unexpected SSH host key ({exc})"
                                         ) from exc
                    last_err = exc
                    log.debug("ssh not ready after %.1fs: %s", elapsed, exc)
                # retry soon: a 0.75 s, 1.1 s … backoff here cost ~0.5 s of every boot
                failures += 1
                delay = 0.2 if failures < 25 else 1.0
            else:
                # sshd takes ~1 s (TCG) to listen after the marker: watch closely then
                delay = 0.05 if marker_at is not None else 0.1
            time.sleep(delay)

    def stop(self) -> None:
        """Always safe to call; kills QEMU and waits for it."""
        if self.process is not None:
            self.exit_code = proc.terminate(self.process, grace=2)
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()

    def __enter__(self) -> VM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
