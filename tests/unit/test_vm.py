from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import pytest

import bisector.vm as vm
from bisector import proc
from bisector.errors import CommandError, InfraError, Untestable
from bisector.vm import (
    Accel,
    BootFailure,
    Disk,
    Machine,
    kernel_cmdline,
    probe_accel,
    probe_machine,
    qemu_argv,
)


def machine(tmp_path: Path, accel: Accel = Accel.TCG, initrd: bool = True) -> Machine:
    return Machine(kernel=tmp_path / "bzImage", initrd=tmp_path / "initrd" if initrd else None,
                   cmdline=kernel_cmdline(initrd=initrd), console_log=tmp_path / "console.log",
                   ssh_port=2222, accel=accel,
                   disks=(Disk(tmp_path / "o.qcow2", "qcow2"),
                          Disk(tmp_path / "m.ext4", "raw", readonly=True)))


def test_argv_is_a_list_with_loopback_forward(tmp_path: Path) -> None:
    m = machine(tmp_path)
    argv = qemu_argv(m, qemu="qemu-system-x86_64")
    # every forward is bound to 127.0.0.1 (not 0.0.0.0: other hosts must not reach the guest)
    netdev = argv[argv.index("-netdev") + 1].split(",")
    forwards = [o for o in netdev if o.startswith("hostfwd=")]
    assert forwards == ["hostfwd=tcp:127.0.0.1:2222-:22"]
    # one argument per item, never a shell string: the kernel command line, spaces and
    # all, is a single argument
    assert argv[argv.index("-append") + 1] == m.cmdline and " " in m.cmdline
    assert argv == [
        "qemu-system-x86_64", "-name", "bisector-guest", "-nodefaults", "-no-user-config",
        "-display", "none", "-no-reboot",
        "-accel", "tcg", "-cpu", "max",
        "-machine", "q35", "-m", "1024", "-smp", "2",
        "-kernel", f"{tmp_path}/bzImage", "-append", m.cmdline, "-initrd", f"{tmp_path}/initrd",
        "-chardev", f"file,id=con0,path={tmp_path}/console.log", "-serial", "chardev:con0",
        "-drive", f"file={tmp_path}/o.qcow2,if=virtio,format=qcow2,cache=unsafe",
        "-drive", f"file={tmp_path}/m.ext4,if=virtio,format=raw,cache=unsafe,readonly=on",
        "-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22",
        "-device", "virtio-net-pci,netdev=net0",
        "-device", "virtio-rng-pci",
    ]


@pytest.mark.parametrize(("outside", "restricted"), [(False, True), (True, False)])
def test_guest_network_is_restricted_unless_declared(tmp_path: Path, outside: bool,
                                                     restricted: bool) -> None:
    from dataclasses import replace

    argv = qemu_argv(replace(machine(tmp_path), outside=outside))
    netdev = argv[argv.index("-netdev") + 1].split(",")
    assert ("restrict=on" in netdev) is restricted
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in netdev  # SSH works either way


def test_kvm_argv_and_cmdline(tmp_path: Path) -> None:
    argv = qemu_argv(machine(tmp_path, Accel.KVM, initrd=False))
    assert argv[argv.index("-accel") + 1] == "kvm"
    cmd = argv[argv.index("-append") + 1]
    assert "root=/dev/vda" in cmd and "panic=-1" in cmd and "console=ttyS0" in cmd
    assert "-initrd" not in argv
    assert "root=" not in kernel_cmdline(initrd=True)


def test_boot_failure_is_untestable_with_the_console_as_its_log(tmp_path: Path) -> None:
    err = BootFailure("no SSH within 5s", tmp_path / "console.log")
    assert isinstance(err, Untestable)
    assert err.log_path == err.console == tmp_path / "console.log"
    assert err.reason == str(err) == "no SSH within 5s"


def test_probe_machine_has_no_disks_and_no_network(tmp_path: Path) -> None:
    argv = qemu_argv(probe_machine(tmp_path / "bzImage", tmp_path / "probe.log"))
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-kernel") + 1] == str(tmp_path / "bzImage")
    assert not {"-drive", "-netdev", "-initrd"} & set(argv)
    assert "virtio-net-pci,netdev=net0" not in argv


def fake_qemu(tmp_path: Path, behaviour: str) -> Path:
    """A stand-in for qemu-system-x86_64: records its argv, then prints a kernel banner
    on the console file it was given, fails like QEMU without KVM, or hangs."""
    actions = {
        "banner": 'echo "Linux version 6.1.0-fake (probe)" > "$log"; exec sleep 30',
        "fail": 'echo "qemu: failed to initialize kvm: Permission denied" >&2; exit 1',
        "hang": "exec sleep 30",
    }
    script = tmp_path / f"qemu-{behaviour}"
    script.write_text(
        "#!/bin/bash\n"
        f"printf '%s\\n' \"$@\" > {shlex.quote(str(tmp_path / 'qemu-argv'))}\n"
        'for a in "$@"; do case "$a" in file,id=con0,path=*) log="${a#*path=}";; esac; done\n'
        f"{actions[behaviour]}\n")
    script.chmod(0o755)
    return script


def test_kvm_probe_command_is_qemu_argv_of_the_probe_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    qemu = fake_qemu(tmp_path, "banner")
    monkeypatch.setattr(vm, "QEMU", str(qemu))
    vm._probe_kvm(tmp_path / "bzImage", 10, tmp_path / "work")
    expected = qemu_argv(probe_machine(tmp_path / "bzImage",
                                       tmp_path / "work" / "kvm-probe.console.log"))
    assert expected[0] == str(qemu)
    assert (tmp_path / "qemu-argv").read_text().splitlines() == expected[1:]


def test_kvm_guest_printing_its_banner_means_kvm(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm, "QEMU", str(fake_qemu(tmp_path, "banner")))
    accel, why = vm._probe_kvm(tmp_path / "bzImage", 10, tmp_path / "work")
    assert accel is Accel.KVM and "banner" in why


def test_kvm_probe_that_exits_falls_back_to_tcg(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm, "QEMU", str(fake_qemu(tmp_path, "fail")))
    accel, why = vm._probe_kvm(tmp_path / "bzImage", 10, tmp_path / "work")
    assert accel is Accel.TCG
    assert "exited 1" in why and "failed to initialize kvm" in why


def test_silent_kvm_guest_falls_back_to_tcg_at_the_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm, "QEMU", str(fake_qemu(tmp_path, "hang")))
    t0 = time.monotonic()
    accel, why = vm._probe_kvm(tmp_path / "bzImage", 1.0, tmp_path / "work")
    assert accel is Accel.TCG and "hangs" in why
    assert time.monotonic() - t0 < 5  # the probe is short: deadline + a 1 s kill grace


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


def test_run_bytes_passes_binary_through_unaltered() -> None:
    data = bytes(range(256)) * 4  # not UTF-8: decoding it anywhere would alter it
    assert proc.run_bytes(["cat"], input=data).stdout == data


def test_run_feeds_bytes_input_on_stdin() -> None:
    assert proc.run(["wc", "-c"], input=b"\xff\xfe\x00").stdout.strip() == "3"


def test_run_bytes_failure_carries_stderr_not_stdout() -> None:
    with pytest.raises(CommandError, match="broken on purpose") as ei:
        proc.run_bytes(["bash", "-c", "echo DATA; echo broken on purpose >&2; exit 4"])
    assert ei.value.returncode == 4 and "DATA" not in ei.value.output
