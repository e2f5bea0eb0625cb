from __future__ import annotations

import os
from pathlib import Path

import pytest

from bisector import proc
from bisector.errors import CommandError, InfraError
from bisector.vm import Accel, Disk, Machine, kernel_cmdline, probe_accel, qemu_argv


def machine(tmp_path: Path, accel: Accel = Accel.TCG, initrd: bool = True) -> Machine:
    return Machine(kernel=tmp_path / "bzImage", initrd=tmp_path / "initrd" if initrd else None,
                   cmdline=kernel_cmdline(initrd=initrd), console_log=tmp_path / "console.log",
                   ssh_port=2222, accel=accel,
                   disks=(Disk(tmp_path / "o.qcow2", "qcow2"),
                          Disk(tmp_path / "m.ext4", "raw", readonly=True)))


def test_argv_is_a_list_with_loopback_forward(tmp_path: Path) -> None:
    argv = qemu_argv(machine(tmp_path))
    assert all(isinstance(a, str) for a in argv)
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in " ".join(argv)
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-cpu") + 1] == "max"
    assert "-no-reboot" in argv and "-initrd" in argv
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives[0].startswith(f"file={tmp_path}/o.qcow2,if=virtio,format=qcow2")
    assert drives[1].endswith("readonly=on")
    assert f"path={tmp_path}/console.log" in " ".join(argv)


def test_kvm_argv_and_cmdline(tmp_path: Path) -> None:
    argv = qemu_argv(machine(tmp_path, Accel.KVM, initrd=False))
    assert argv[argv.index("-accel") + 1] == "kvm"
    cmd = argv[argv.index("-append") + 1]
    assert "root=/dev/vda" in cmd and "panic=-1" in cmd and "console=ttyS0" in cmd
    assert "-initrd" not in argv
    assert "root=" not in kernel_cmdline(initrd=True)


def test_probe_accel_explicit_and_missing_kvm(tmp_path: Path, tmp_cache: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert probe_accel(tmp_path / "k", "tcg")[0] is Accel.TCG
    assert probe_accel(tmp_path / "k", "kvm")[0] is Accel.KVM
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    accel, why = probe_accel(tmp_path / "k", "auto")
    assert accel is Accel.TCG and "/dev/kvm" in why
    with pytest.raises(InfraError):
        probe_accel(tmp_path / "k", "fast")


def test_probe_result_is_cached(tmp_path: Path, tmp_cache: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import bisector.vm as vm

    calls = []

    def fake_probe(kernel: Path, deadline: float, workdir: Path) -> tuple[Accel, str]:
        calls.append(kernel)
        return Accel.TCG, "hangs"

    monkeypatch.setattr(os, "access", lambda *a, **k: True)
    monkeypatch.setattr(vm, "_probe_kvm", fake_probe)
    assert probe_accel(tmp_path / "k", "auto")[0] is Accel.TCG
    accel, why = probe_accel(tmp_path / "k", "auto")
    assert accel is Accel.TCG and why.startswith("cached probe") and len(calls) == 1


def test_proc_gate(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        proc.run("echo hi")  # type: ignore[arg-type]
    assert proc.run(["echo", "hi"]).stdout == "hi\n"
    log = tmp_path / "cmd.log"
    with pytest.raises(CommandError) as ei:
        proc.run(["bash", "-c", "echo oops >&2; exit 3"], log_file=log)
    assert ei.value.returncode == 3 and "oops" in str(ei.value)
    assert "oops" in log.read_text() and "[exit 3]" in log.read_text()
    with pytest.raises(CommandError) as ei:
        proc.run(["sleep", "5"], timeout=0.2)
    assert ei.value.timed_out
    with pytest.raises(InfraError, match="command not found"):
        proc.run(["/nonexistent/tool"])
