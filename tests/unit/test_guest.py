"""Guest SSH layer (and VM.wait_ready over it) against a protocol-level fake server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from bisector import proc
from bisector.errors import InfraError
from bisector.guest import Guest, load_host_key
from bisector.vm import (
    READY_MARKER,
    SSHD_LISTENING,
    VM,
    Accel,
    BootFailure,
    Machine,
    free_port,
)
from tests.fakes.ssh_server import FakeSSHServer


def keypair(tmp_path: Path, name: str) -> tuple[paramiko.Ed25519Key, Path]:
    from bisector import proc

    path = tmp_path / name
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path])
    return paramiko.Ed25519Key.from_private_key_file(str(path)), path


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[paramiko.Ed25519Key, Path]]:
    return {n: keypair(tmp_path, n) for n in ("host", "other", "client")}


@pytest.fixture
def server(tmp_path: Path, keys: dict[str, tuple[paramiko.Ed25519Key, Path]]
           ) -> Iterator[FakeSSHServer]:
    work = tmp_path / "guestroot"
    work.mkdir()
    srv = FakeSSHServer(keys["host"][0], keys["client"][0], work)
    yield srv
    srv.close()


def test_pinned_key_connects_and_runs(tmp_path: Path, server: FakeSSHServer,
                                      keys: dict[str, tuple[paramiko.Ed25519Key, Path]]) -> None:
    transcript = tmp_path / "t.log"
    g = Guest(server.port, Path(f"{keys['host'][1]}.pub"), keys["client"][1], transcript)
    g.connect()
    try:
        r = g.run("echo hello; echo err >&2; exit 3", timeout=10, name="s", phase="run")
        assert (r.exit_status, r.stdout, r.stderr) == (3, "hello\n", "err\n")
        assert not r.timed_out
        r = g.run("sleep 5", timeout=1, name="slow", phase="run")
        assert r.timed_out and r.exit_status is None
        r = g.run("false; echo not reached", timeout=10, name="errexit", phase="run")
        assert r.exit_status == 1 and r.stdout == ""
    finally:
        g.close()
    text = transcript.read_text()
    assert "echo hello" in text and "[exit 3" in text and "(timeout)" in text


def test_unknown_host_key_is_rejected(tmp_path: Path, server: FakeSSHServer,
                                      keys: dict[str, tuple[paramiko.Ed25519Key, Path]]) -> None:
    g = Guest(server.port, Path(f"{keys['other'][1]}.pub"), keys["client"][1],
              tmp_path / "t.log")
    with pytest.raises(InfraError, match="host key"):
        g.connect()
    assert not server.commands  # nothing ran on a server we did not trust


def test_load_host_key(keys: dict[str, tuple[paramiko.Ed25519Key, Path]]) -> None:
    k = load_host_key(Path(f"{keys['host'][1]}.pub"))
    assert k.get_base64() == keys["host"][0].get_base64()


# ------------------------------------------------------------------ VM.wait_ready


def booting_vm(tmp_path: Path, port: int) -> VM:
    """A VM without QEMU: a stand-in process that stays alive, and a console that
    already says sshd listens, so wait_ready tries to connect at once."""
    console = tmp_path / "console.log"
    console.write_text(f"{READY_MARKER}\n{SSHD_LISTENING}0.0.0.0 port 22.\n")
    vm = VM(Machine(kernel=tmp_path / "bzImage", cmdline="", console_log=console,
                    ssh_port=port, accel=Accel.TCG), tmp_path)
    vm.process = proc.spawn(["sleep", "60"])
    vm.started = time.monotonic()
    return vm


def test_wait_ready_stops_at_once_on_a_host_key_mismatch(
        tmp_path: Path, server: FakeSSHServer,
        keys: dict[str, tuple[paramiko.Ed25519Key, Path]]) -> None:
    g = Guest(server.port, Path(f"{keys['other'][1]}.pub"), keys["client"][1],
              tmp_path / "t.log")
    vm = booting_vm(tmp_path, server.port)
    t0 = time.monotonic()
    try:
        with pytest.raises(InfraError, match="host key"):
            vm.wait_ready(g.connect, deadline=20)
    finally:
        vm.stop()
        g.close()
    assert time.monotonic() - t0 < 10  # not retried until the boot deadline
    assert server.accepted == 1


def test_wait_ready_raw_paramiko_host_key_error_is_infra(
        tmp_path: Path, keys: dict[str, tuple[paramiko.Ed25519Key, Path]]) -> None:
    calls = []

    def connect() -> None:
        calls.append(1)
        raise paramiko.BadHostKeyException("[127.0.0.1]:2222", keys["other"][0],
                                           keys["host"][0])

    vm = booting_vm(tmp_path, 2222)
    try:
        with pytest.raises(InfraError, match="host key"):
            vm.wait_ready(connect, deadline=20)
    finally:
        vm.stop()
    assert len(calls) == 1


def test_wait_ready_retries_until_sshd_answers(
        tmp_path: Path, keys: dict[str, tuple[paramiko.Ed25519Key, Path]]) -> None:
    # the forward accepts and drops connections until the guest's sshd listens: the
    # client sees "Error reading SSH protocol banner" / EOF / resets, all retried
    work = tmp_path / "guestroot"
    work.mkdir()
    srv = FakeSSHServer(keys["host"][0], keys["client"][0], work, drop_first=3)
    g = Guest(srv.port, Path(f"{keys['host'][1]}.pub"), keys["client"][1], tmp_path / "t.log")
    vm = booting_vm(tmp_path, srv.port)
    try:
        assert vm.wait_ready(g.connect, deadline=30) is g
        assert g.run("echo up", timeout=10).stdout == "up\n"
    finally:
        vm.stop()
        g.close()
        srv.close()
    assert srv.accepted == 4


def test_wait_ready_refused_connections_end_in_boot_failure(
        tmp_path: Path, keys: dict[str, tuple[paramiko.Ed25519Key, Path]]) -> None:
    port = free_port()  # nothing listens there: connection refused, every time
    g = Guest(port, Path(f"{keys['host'][1]}.pub"), keys["client"][1], tmp_path / "t.log")
    vm = booting_vm(tmp_path, port)
    try:
        with pytest.raises(BootFailure, match="no SSH within 2s"):
            vm.wait_ready(g.connect, deadline=2)
    finally:
        vm.stop()
        g.close()
