"""A tiny paramiko SSH server on 127.0.0.1 for testing the guest layer.

It accepts one public key, runs exec requests with the host's bash (inside a
temp directory) and can present any host key, so tests can check that a
wrong key is refused.  ``drop_first=N`` closes the first N connections as
soon as they are accepted, which is what QEMU's user-mode forward does while
the guest's sshd is not listening yet (the client reads no SSH banner).
Protocol-level fake only: the product talks to real sshd in a real guest.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import paramiko


class _Server(paramiko.ServerInterface):
    def __init__(self, allowed: paramiko.PKey) -> None:
        self.allowed = allowed
        self.command: bytes | None = None
        self.event = threading.Event()

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == "root" and key.get_base64() == self.allowed.get_base64():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.command = command
        self.event.set()
        return True


class FakeSSHServer:
    def __init__(self, host_key: paramiko.PKey, client_pub: paramiko.PKey, root: Path,
                 *, drop_first: int = 0) -> None:
        self.host_key = host_key
        self.client_pub = client_pub
        self.root = root
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = int(self.sock.getsockname()[1])
        self.commands: list[str] = []
        self.drop_first = drop_first
        #: connections accepted so far (dropped ones included)
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.drop_first:
                conn.close()
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        t = paramiko.Transport(conn)
        t.add_server_key(self.host_key)
        server = _Server(self.client_pub)
        try:
            t.start_server(server=server)
        except (paramiko.SSHException, EOFError, OSError):
            return
        while t.is_active():
            chan = t.accept(timeout=1)
            if chan is None:
                continue
            threading.Thread(target=self._exec, args=(chan, server), daemon=True).start()

    def _exec(self, chan: paramiko.Channel, server: _Server) -> None:
        server.event.wait(5)
        server.event.clear()
        cmd = (server.command or b"").decode()
        self.commands.append(cmd)
        # The guest layer wraps scripts in "timeout … bash -c 'cd DIR && …'";
        # run it with the host bash but inside our sandbox directory.
        cmd = cmd.replace("/root/repro", str(self.root)).replace("cd / &&", f"cd {self.root} &&")
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, cwd=self.root,
                           check=False)
        chan.sendall(p.stdout)
        chan.sendall_stderr(p.stderr)
        chan.send_exit_status(p.returncode)
        chan.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
