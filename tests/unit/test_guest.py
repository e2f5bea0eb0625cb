"""Guest SSH layer against a protocol-level fake server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from bisector.errors import InfraError
from bisector.guest import Guest, load_host_key
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
