"""QEMU's own exit status decides: a failing or killed QEMU is infrastructure, not SKIP.

With ``-no-reboot``, a guest that panics, resets or powers off makes QEMU exit
0 (the kernel's doing: a boot failure).  Any other status, or a signal, is
QEMU's or someone else's: an InfraError, so a bisection stops instead of
marking the kernel untestable.  A stand-in script plays QEMU.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import bisector.vm as vm
from bisector.errors import InfraError
from bisector.vm import VM, Accel, BootFailure, Machine


def vm_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> VM:
    fake = tmp_path / "fake-qemu"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(vm, "QEMU", str(fake))
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"\0" * 1024)
    m = Machine(kernel=kernel, cmdline="", console_log=tmp_path / "console.log",
                ssh_port=1, accel=Accel.KVM)  # KVM: no direct-boot unpacking of the fake
    v = VM(m, tmp_path)
    v.start()
    return v


def never_ready() -> None:
    raise OSError("connection refused")


@pytest.mark.parametrize(("script", "error", "fragment"), [
    ("exit 0", BootFailure, "guest stopped during boot"),
    ("echo 'qemu: could not load kernel' >&2; exit 1", InfraError, "qemu exited 1: qemu: could"),
    ("exit 1", InfraError, "qemu exited 1"),  # BISECTOR_QEMU=/bin/false: no stderr at all
    ("kill -9 $$", InfraError, "killed by signal 9"),
])
def test_qemu_exit_status_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  script: str, error: type[Exception], fragment: str) -> None:
    v = vm_with(tmp_path, monkeypatch, script)
    try:
        with pytest.raises(error, match=fragment):
            v.wait_ready(never_ready, deadline=20)
    finally:
        v.stop()


def test_qemu_killed_after_ssh_came_up_is_infra(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    v = vm_with(tmp_path, monkeypatch, "exec sleep 60")
    try:
        v.check_qemu()  # running: nothing to say
        assert v.process is not None
        os.kill(v.process.pid, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(InfraError, match="killed by signal 9"):
            v.check_qemu(settle=2.0)
        assert time.monotonic() - t0 < 2.0
    finally:
        v.stop()
