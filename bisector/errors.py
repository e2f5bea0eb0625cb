"""Error classes split by whose fault it is.

The CLI maps them to exit codes in one place (``bisector.cli``): a user error
(bad YAML, unknown kernel, bad range) must be fixable from its one-line
message; an infrastructure error (QEMU missing, download failed, disk full)
keeps its logs and never becomes a BAD verdict.
"""

from __future__ import annotations

from pathlib import Path


class BisectorError(Exception):
    """Base class; ``str(err)`` is the one-line message shown to the user."""

    #: where the evidence for this failure was written, if anywhere
    log_path: Path | None = None


class UserError(BisectorError):
    """The input is wrong: the message names the file / field / kernel."""


class InfraError(BisectorError):
    """The machinery failed (not the kernel under test, not the user's input)."""


class Busy(BisectorError):
    """Someone else is doing this right now (another sweep of the same config): try
    again later.  Exit code 75 (EX_TEMPFAIL), so a cron wrapper can tell it apart."""

    exit_code = 75


class Untestable(BisectorError):
    """This kernel cannot be tested: it does not build, is not to be had, does not boot,
    lacks a required config option, or the guest died before the test ran.

    Never a user's mistake and never the machinery's: the kernel under test is at fault
    for something other than the bug.  :func:`bisector.runner.run` is the one place that
    turns it into a SKIP verdict (exit 125 under ``git bisect run``); everywhere else
    it propagates.
    """

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


class CommandError(InfraError):
    """An external command failed; carries argv, return code and output tail."""

    def __init__(self, argv: list[str], returncode: int | None, output: str, *,
                 timed_out: bool = False, log_path: Path | None = None) -> None:
        self.argv = argv
        self.returncode = returncode
        self.output = output
        self.timed_out = timed_out
        self.log_path = log_path
        tail = output.strip().splitlines()[-1:] if output.strip() else []
        what = "timed out" if timed_out else f"exited {returncode}"
        msg = f"command {argv[0]!r} {what}"
        if tail:
            msg += f": {tail[0][:300]}"
        if log_path is not None:
            msg += f" (log: {log_path})"
        super().__init__(msg)

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


class DownloadError(InfraError):
    """A download failed or did not match its published checksum."""


class ChecksumMismatch(DownloadError):
    """The bytes we got are not the bytes the archive published: never boot them."""
