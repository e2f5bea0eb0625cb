"""Progress reporting for long steps (downloads, image builds, boots).

On a TTY a single updating line; otherwise plain log lines at a modest rate,
so cron mails and CI logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None,
                 unit: str = "B") -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._start = time.monotonic()

    def _fmt(self, n: float) -> str:
        if self.unit != "B":
            return f"{n:.0f}{self.unit}"
        for u in ("B", "KiB", "MiB", "GiB"):
            if n < 1024 or u == "GiB":
                return f"{n:.1f}{u}" if u != "B" else f"{n:.0f}B"
            n /= 1024
        return f"{n}"  # pragma: no cover

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        interval = 0.2 if self.tty else 10.0
        if now - self._last < interval:
            return
        self._last = now
        self._emit()

    def _emit(self, final: bool = False) -> None:
        if self.total:
            pct = 100.0 * self.done / self.total
            text = f"{self.label}: {self._fmt(self.done)}/{self._fmt(self.total)} ({pct:.0f}%)"
        else:
            text = f"{self.label}: {self._fmt(self.done)}"
        if final:
            text += f" in {time.monotonic() - self._start:.1f}s"
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._emit(final=True)


def note(msg: str, stream: TextIO | None = None) -> None:
    """A plain progress line (phase start/end)."""
    s = stream or sys.stderr
    s.write(f"[bisector] {msg}\n")
    s.flush()
