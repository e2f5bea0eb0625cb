"""An HTTP server on 127.0.0.1 that serves a directory and misbehaves on cue.

Like :func:`tests.fakes.archive.serve`, plus two faults for the ``.deb``
requests (the big downloads):

* ``stall``: accept the request and answer nothing (``half=False``), or
  answer 200 with the full ``Content-Length``, send half the body and then
  nothing (``half=True``: the client has its ``.part`` file open) — a
  download that hangs until :attr:`FaultyServer.release` is set or the server
  stops;
* ``before``: run a callable first (e.g. fill the disk the client writes to,
  as another process would).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FaultyServer:
    url: str = ""
    #: which ``.deb`` requests (1 = the first) stall; the others are served
    stall: Callable[[int], bool] = lambda n: False
    half: bool = True
    before: Callable[[str], None] | None = None
    #: set when a request has stalled (its client is waiting for the rest)
    stalled: threading.Event = field(default_factory=threading.Event)
    #: set to let stalled requests end (closing the connection short)
    release: threading.Event = field(default_factory=threading.Event)
    debs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_state: FaultyServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server_state
        if not self.path.endswith(".deb"):
            super().do_GET()
            return
        with state.lock:
            state.debs += 1
            n = state.debs
        if state.before is not None:
            state.before(self.path)
        if not state.stall(n):
            super().do_GET()
            return
        if state.half:
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
        state.stalled.set()
        state.release.wait(120)
        self.close_connection = True


@contextmanager
def serve_faulty(root: Path, *, stall: Callable[[int], bool] = lambda n: False,
                 half: bool = True, before: Callable[[str], None] | None = None
                 ) -> Iterator[FaultyServer]:
    state = FaultyServer(stall=stall, half=half, before=before)
    handler = type("Handler", (_Handler,), {"server_state": state})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


def fill(directory: Path, leave: int = 0) -> Path:
    """Fill the file system of ``directory`` up to ``leave`` bytes free (a file named
    ``filler``); with ``leave=0``, until a write fails with ENOSPC."""
    path = directory / "filler"
    st = os.statvfs(directory)
    want = max(0, st.f_bavail * st.f_frsize - leave)
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as fh:
        try:
            while want > 0:
                want -= fh.write(chunk[:min(len(chunk), want)]) or 0
            while leave == 0:
                fh.write(b"\0" * 4096)
        except OSError:  # ENOSPC: full
            pass
    return path
