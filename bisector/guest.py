"""Talking to the guest over SSH (fabric on paramiko).

The guest's host key is pinned: the image build generated it, and a server
presenting any other key is refused (paramiko's RejectPolicy; fabric's
default AutoAddPolicy would accept anything, which is not acceptable even on
127.0.0.1 — another process could own that port).  Every command, its output
and exit status go to a transcript file as they happen.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import shlex
import time
from pathlib import Path

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from .errors import InfraError, Untestable
from .verdict import StepResult

log = logging.getLogger(__name__)

#: guest-side exit codes of coreutils ``timeout``
_TIMEOUT_CODES = (124, 137)


class GuestLost(Untestable):
    """The SSH session broke while a command ran (the guest crashed or hung).

    Inside an iteration the runner catches it and judges the iteration (the
    reproducer may declare a crash as the bug); anywhere else it means the
    kernel could not be tested."""


def load_host_key(pub: Path) -> paramiko.PKey:
    kind, data = pub.read_text().split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


class Guest:
    def __init__(self, port: int, host_key_pub: Path, client_key: Path, transcript: Path,
                 *, host: str = "127.0.0.1", user: str = "root") -> None:
        self.port = port
        self.host = host
        self.transcript = transcript
        config = Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}})
        self.conn = Connection(
            host=host, port=port, user=user, config=config, connect_timeout=10,
            connect_kwargs={"key_filename": [str(client_key)], "look_for_keys": False,
                            "allow_agent": False, "banner_timeout": 15, "auth_timeout": 15},
        )
        client: paramiko.SSHClient = self.conn.client
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        keys = client.get_host_keys()
        keys.clear()
        hostname = host if port == 22 else f"[{host}]:{port}"
        key = load_host_key(host_key_pub)
        keys.add(hostname, key.get_name(), key)

    def connect(self) -> Guest:
        """Open the session; raises on any failure (the VM layer retries)."""
        try:
            self.conn.open()
        except paramiko.BadHostKeyException as exc:
            self.conn.close()
            raise InfraError(f"guest on port {self.port} presented an unexpected host key "
                             "(refusing to connect)") from exc
        except paramiko.SSHException as exc:
            self.conn.close()
            if "not found in known_hosts" in str(exc):
                raise InfraError(f"guest on port {self.port}: host key not the pinned one "
                                 f"({exc})") from exc
            raise
        self._log(f"# connected to {self.host}:{self.port} at {time.strftime('%H:%M:%S')}\n")
        return self

    def _log(self, text: str) -> None:
        with self.transcript.open("a", encoding="utf-8") as fh:
            fh.write(text)

    def run(self, script: str, *, timeout: float, name: str = "", phase: str = "",
            cwd: str = "/root/repro") -> StepResult:
        """Run a bash script (errexit on) with a guest-side and a host-side timeout."""
        inner = f"cd {shlex.quote(cwd)} && exec bash -e -c {shlex.quote(script)}"
        cmd = (f"timeout --kill-after=5 {max(1, int(timeout))} "
               f"bash -c {shlex.quote(inner)}")
        self._log(f"\n$ [{phase}] {name} (timeout {timeout:.0f}s)\n{script.rstrip()}\n")
        t0 = time.monotonic()
        try:
            r = self.conn.run(cmd, hide=True, warn=True, pty=False, timeout=timeout + 30)
        except CommandTimedOut as exc:
            secs = time.monotonic() - t0
            self._log(f"--- host-side timeout after {secs:.1f}s: guest unresponsive\n")
            raise GuestLost(f"step '{name}' did not return within {timeout + 30:.0f}s") from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._log(f"--- connection lost: {exc}\n")
            raise GuestLost(f"SSH connection lost during step '{name}': {exc}") from exc
        secs = time.monotonic() - t0
        if r.exited == -1 or r.exited is None:
            self._log("--- connection lost (no exit status)\n")
            raise GuestLost(f"no exit status for step '{name}' (guest went away?)")
        timed_out = r.exited in _TIMEOUT_CODES and secs >= timeout - 1
        self._log(f"--- stdout\n{r.stdout}--- stderr\n{r.stderr}"
                  f"[exit {r.exited}{' (timeout)' if timed_out else ''}, {secs:.1f}s]\n")
        return StepResult(name=name, phase=phase, command=script, exit_status=None
                          if timed_out else r.exited, stdout=r.stdout, stderr=r.stderr,
                          seconds=secs, timed_out=timed_out)

    def output(self, command: str, timeout: float = 30) -> str:
        """A short helper command (dmesg, uname); failures raise GuestLost."""
        return self.run(command, timeout=timeout, name=command.split()[0], phase="helper",
                        cwd="/").stdout

    def put(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        self._log(f"# put {remote} ({len(data)} bytes, mode {mode:o})\n")
        try:
            self.conn.run(f"mkdir -p {shlex.quote(str(Path(remote).parent))}", hide=True,
                          in_stream=False)
            self.conn.put(io.BytesIO(data), remote=remote)
            self.conn.sftp().chmod(remote, mode)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise GuestLost(f"upload of {remote} failed: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
