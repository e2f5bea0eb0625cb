"""Downloads that survive a real network: retries with backoff (429, 5xx), resume with
HTTP Range after a dropped connection or a killed run, mirrors, verification last.

A local HTTP server on 127.0.0.1 plays the archive, with scripted faults.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bisector.errors import ChecksumMismatch, DownloadError
from bisector.kernel import fetch

DATA = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(DATA).hexdigest()

#: (request number, Range header) → what to do: "ok", "drop" (half the body, then
#: close), "429", "503", "404", "ignore-range" (200 with the whole body), "wrong"
Plan = Callable[[int, str | None], str]


@contextmanager
def archive(plan: Plan) -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            seen.append(rng)
            what = plan(len(seen), rng)
            if what in ("429", "503", "404"):
                self.send_response(int(what))
                if what == "429":
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = DATA if what != "wrong" else DATA[::-1]
            start = 0
            if rng and what not in ("ignore-range", "wrong"):
                start = int(rng.removeprefix("bytes=").split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            rest = body[start:]
            self.send_header("Content-Length", str(len(rest)))
            self.end_headers()
            if what == "drop":
                self.wfile.write(rest[: len(rest) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self.wfile.write(rest)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/linux.deb", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch.time, "sleep", lambda s: None)  # no real backoff waits


def test_rate_limit_and_outage_are_retried(tmp_path: Path) -> None:
    with archive(lambda n, r: {1: "429", 2: "503"}.get(n, "ok")) as (url, seen):
        got = fetch.download(url, tmp_path / "k.deb", SHA, size=len(DATA))
    assert got.read_bytes() == DATA and len(seen) == 3


def test_a_dropped_connection_resumes_with_range(tmp_path: Path) -> None:
    with archive(lambda n, r: "drop" if n == 1 else "ok") as (url, seen):
        got = fetch.download(url, tmp_path / "k.deb", SHA, size=len(DATA))
    assert got.read_bytes() == DATA
    assert seen[0] is None and seen[1] is not None
    resumed_at = int(seen[1].removeprefix("bytes=").rstrip("-"))
    assert len(DATA) // 4 < resumed_at <= len(DATA) // 2  # what arrived was kept


def test_a_killed_runs_partial_file_is_resumed(tmp_path: Path) -> None:
    (tmp_path / "k.deb.part").write_bytes(DATA[:1000])  # what a kill -9 left
    with archive(lambda n, r: "ok") as (url, seen):
        got = fetch.download(url, tmp_path / "k.deb", SHA, size=len(DATA))
    assert got.read_bytes() == DATA and seen == ["bytes=1000-"]
    assert not list(tmp_path.glob("*.part*"))


def test_a_server_ignoring_range_starts_over(tmp_path: Path) -> None:
    (tmp_path / "k.deb.part").write_bytes(b"junk" * 100)
    with archive(lambda n, r: "ignore-range") as (url, _):
        got = fetch.download(url, tmp_path / "k.deb", SHA, size=len(DATA))
    assert got.read_bytes() == DATA


def test_mirrors_are_tried_in_turn(tmp_path: Path) -> None:
    with archive(lambda n, r: "404") as (dead, _), \
            archive(lambda n, r: "wrong") as (lying, _), \
            archive(lambda n, r: "ok") as (good, seen):
        got = fetch.download([dead, lying, good], tmp_path / "k.deb", SHA, size=len(DATA))
    assert got.read_bytes() == DATA and len(seen) == 1


def test_every_mirror_failing_is_one_error_naming_them(tmp_path: Path) -> None:
    expected = r"k\.deb: every mirror failed: .*HTTP 404.*sha256 mismatch"
    with archive(lambda n, r: "404") as (a, _), archive(lambda n, r: "wrong") as (b, _), \
            pytest.raises(DownloadError, match=expected):
        fetch.download([a, b], tmp_path / "k.deb", SHA)
    assert not (tmp_path / "k.deb").exists()


def test_tampered_bytes_are_never_kept(tmp_path: Path) -> None:
    with archive(lambda n, r: "wrong") as (url, _), pytest.raises(ChecksumMismatch):
        fetch.download(url, tmp_path / "k.deb", SHA)
    assert [p.name for p in tmp_path.glob("k.deb*")] == ["k.deb.lock"]


def test_giving_up_keeps_the_partial_file_for_the_next_attempt(tmp_path: Path) -> None:
    with archive(lambda n, r: "drop") as (url, seen), pytest.raises(DownloadError,
                                                                     match="after 5 attempts"):
        fetch.download(url, tmp_path / "k.deb", SHA, size=len(DATA))
    assert len(seen) == fetch.BODY_ATTEMPTS
    assert (tmp_path / "k.deb.part").stat().st_size > len(DATA) // 4


def test_mainline_downloads_fall_back_to_a_mirror(tmp_path: Path, tmp_cache: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """BISECTOR_UBUNTU_MAINLINE_URL="primary mirror": the primary lists, the mirror serves."""
    from bisector.kernel.ubuntu import UbuntuMainlineSource
    from tests.fakes.archive import serve
    from tests.fakes.kernel_archives import config_text, mainline_kernels

    good = mainline_kernels(tmp_path / "good", ["v5.7"], config_text(["VETH"]))
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(good, broken)
    for deb in broken.rglob("*.deb"):
        deb.write_bytes(b"truncated")  # the primary's files are damaged
    monkeypatch.setenv("BISECTOR_UBUNTU_KEYRING", "none")
    with serve(broken) as primary, serve(good) as mirror:
        monkeypatch.setenv("BISECTOR_UBUNTU_MAINLINE_URL", f"{primary} {mirror}")
        art = UbuntuMainlineSource().resolve("v5.7")
    assert art.release.startswith("5.7.0") and art.image.exists()
