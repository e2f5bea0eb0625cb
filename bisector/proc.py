"""The one subprocess gate.

Every external command (git, make, qemu, dpkg-deb, ssh-keygen, mke2fs, …) goes
through :func:`run` (or :func:`run_bytes` when stdout is binary, or
:func:`spawn` for long-lived processes such as QEMU): argv lists only, never a
shell string; an explicit cwd/env/timeout; and a failure raises
:class:`~bisector.errors.CommandError` carrying the command, its return code
and the tail of its output, so a failed step can be diagnosed from the message
alone.  ``input`` (str or bytes) is fed on stdin, so no caller needs a
temporary file to hand data to a command.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import CommandError, InfraError

__all__ = ["CommandError", "Completed", "CompletedBytes", "quote", "run", "run_bytes", "spawn",
           "terminate"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class CompletedBytes:
    """What :func:`run_bytes` returns: stdout untouched, stderr decoded (it is for humans)."""

    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: str


def quote(argv: Sequence[str | os.PathLike[str]]) -> str:
    """The command as a line a human can paste into a shell (for evidence files)."""
    return shlex.join(str(a) for a in argv)


def _argv(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(argv, str | bytes):
        raise TypeError("argv must be a list, never a shell string")
    return [os.fspath(a) for a in argv]


def _input_bytes(input: str | bytes | None) -> bytes | None:
    return input.encode() if isinstance(input, str) else input


def _env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    full_env = dict(os.environ)
    full_env.update(env)
    return full_env


def _run_captured(args: list[str], cwd: Path | str | None, env: Mapping[str, str] | None,
                  timeout: float | None, input: bytes | None, *,
                  stdout_file: IO[bytes] | None = None,
                  binary: bool = False) -> subprocess.CompletedProcess[bytes]:
    """The one ``subprocess.run`` call behind :func:`run` and :func:`run_bytes`.

    ``binary``: stdout is data, not diagnostics; a timeout's message leaves it out.
    """
    try:
        return subprocess.run(
            args,
            cwd=cwd,
            env=env,
            timeout=timeout,
            input=input,
            stdout=stdout_file if stdout_file is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=None if input is not None else subprocess.DEVNULL,
            check=False,
            preexec_fn=_die_with_parent,
        )
    except FileNotFoundError as exc:
        raise InfraError(f"command not found: {args[0]} (is it installed? try 'make setup')") \
            from exc
    except subprocess.TimeoutExpired as exc:
        out = ("" if binary else _decode(exc.stdout)) + _decode(exc.stderr)
        raise CommandError(args, None, out, timed_out=True) from exc


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    input: str | bytes | None = None,
    log_file: Path | None = None,
    stdout_file: IO[bytes] | None = None,
) -> Completed:
    """Run a command to completion.

    ``env`` is *added* to the current environment.  ``input`` goes to stdin
    (a str as UTF-8, bytes as they are); without it stdin is /dev/null, so a
    command never waits on our terminal.  With ``log_file`` the combined
    output is also written there (kept even when the command fails).  With
    ``stdout_file`` stdout goes (binary) to that file and is not captured.
    """
    args = _argv(argv)
    full_env = _env(env)
    data = _input_bytes(input)
    log.debug("run: %s (cwd=%s)", quote(args), cwd)
    if log_file is not None and stdout_file is None:
        return _run_logged(args, cwd, full_env, timeout, check, data, log_file)
    proc = _run_captured(args, cwd, full_env, timeout, data, stdout_file=stdout_file)
    stdout = "" if stdout_file is not None else _decode(proc.stdout)
    stderr = _decode(proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, stdout + stderr)
    return Completed(args, proc.returncode, stdout, stderr)


def run_bytes(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    input: str | bytes | None = None,
) -> CompletedBytes:
    """Like :func:`run`, but stdout comes back as bytes, exactly as the command wrote it.

    For binary output (a decompressed kernel, a module) and for text whose
    encoding is not ours to guess (a patch may hold Latin-1): decoding it as
    UTF-8 with replacement would corrupt it.  A failure's message carries the
    tail of stderr only; binary stdout would be noise there.
    """
    args = _argv(argv)
    log.debug("run: %s (cwd=%s)", quote(args), cwd)
    proc = _run_captured(args, cwd, _env(env), timeout, _input_bytes(input),
                         binary=True)
    stderr = _decode(proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, stderr)
    return CompletedBytes(args, proc.returncode, proc.stdout, stderr)


def _run_logged(args: list[str], cwd: Path | str | None, env: Mapping[str, str] | None,
                timeout: float | None, check: bool, input: bytes | None,
                log_file: Path) -> Completed:
    """Stream stdout+stderr into ``log_file`` as they come (long builds, image builds):
    the log is evidence even if we are killed halfway, and can be followed live."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as fh:
        fh.write(f"$ {quote(args)}\n".encode())
        fh.flush()
        start = fh.tell()
        try:
            proc = subprocess.run(
                args, cwd=cwd, env=env, timeout=timeout, input=input,
                stdout=fh, stderr=subprocess.STDOUT,
                stdin=None if input is not None else subprocess.DEVNULL,
                check=False, preexec_fn=_die_with_parent)
            rc: int | None = proc.returncode
        except FileNotFoundError as exc:
            raise InfraError(f"command not found: {args[0]} (is it installed? try 'make setup')"
                             ) from exc
        except subprocess.TimeoutExpired:
            rc = None
        fh.write(f"[exit {rc if rc is not None else 'timeout'}]\n".encode())
    with log_file.open("rb") as rf:
        rf.seek(start)
        out = rf.read().decode("utf-8", errors="replace")
    out = out.rsplit("[exit ", 1)[0]
    if rc is None:
        raise CommandError(args, None, out, timed_out=True, log_path=log_file)
    if check and rc != 0:
        raise CommandError(args, rc, out, log_path=log_file)
    return Completed(args, rc, out, "")


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def _die_with_parent() -> None:
    """preexec hook: the child gets SIGKILL if we die (even by kill -9)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:  # pragma: no cover - non-glibc host
        pass


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | str | None = None,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    stderr: IO[bytes] | int | None = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start a long-lived process (QEMU) that dies with us.

    The caller owns teardown (see :func:`terminate`); PR_SET_PDEATHSIG covers
    the case where we are killed before our ``finally`` blocks run.
    """
    args = _argv(argv)
    log.debug("spawn: %s", quote(args))
    try:
        return subprocess.Popen(
            args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            preexec_fn=_die_with_parent,
        )
    except FileNotFoundError as exc:
        raise InfraError(f"command not found: {args[0]} (is it installed? try 'make setup')") \
            from exc


def terminate(proc: subprocess.Popen[bytes], grace: float = 3.0) -> int | None:
    """Stop a spawned process: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode
