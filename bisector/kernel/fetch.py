"""Downloads that are verified before anything uses them.

A file is streamed to ``<name>.part`` (resumed with HTTP Range after a dropped
connection or a killed run), hashed, compared with the checksum the archive
published and only then renamed into place.  Requests are retried with
backoff (429 and 5xx included), and a file may come from a list of mirrors.  A
mismatch deletes the bytes and raises :class:`ChecksumMismatch`: a corrupt or
tampered kernel is never booted.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..errors import ChecksumMismatch, DownloadError
from ..paths import locked, os_error, require_free
from ..progress import Progress

log = logging.getLogger(__name__)

TIMEOUT = (15, 60)  # connect, read (seconds between bytes)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: statuses worth asking again (429: snapshot.debian.org's rate limit; 5xx: outages)
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: tries of one file when the connection drops mid-body (each resumes with Range)
BODY_ATTEMPTS = 5


def new_session() -> requests.Session:
    """A session whose requests are retried with exponential backoff.

    urllib3's ``Retry`` (a dependency of requests already) does it at the
    adapter: connection errors, read errors before the body, and the statuses
    above, honouring ``Retry-After`` — no new dependency, and every fetcher
    gets it by using this session.  A connection lost in the middle of a body
    is handled by :func:`download` itself, which resumes with HTTP Range.
    """
    retry = Retry(total=5, connect=5, read=3, status=5, backoff_factor=0.5,
                  status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET", "HEAD"}),
                  respect_retry_after_header=True, raise_on_status=False)
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def get_bytes(url: str, session: requests.Session | None = None) -> bytes:
    """Small files (indexes, checksum lists)."""
    s = session or new_session()
    try:
        r = s.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot fetch {url}: {exc.__class__.__name__}: {exc}") from exc
    if r.status_code != 200:
        raise DownloadError(f"cannot fetch {url}: HTTP {r.status_code}")
    return r.content


def download(url: str | Sequence[str], dest: Path, sha256: str, *, size: int | None = None,
             session: requests.Session | None = None) -> Path:
    """Fetch ``url`` to ``dest`` unless a verified copy is already there.

    ``url`` may list mirrors of the same file: each is tried in turn until one
    gives the published bytes (a mirror that serves other bytes is skipped too).
    """
    urls = [url] if isinstance(url, str) else list(url)
    with locked(dest):
        errors: list[DownloadError] = []
        for u in urls:
            try:
                return _download(u, dest, sha256.lower(), size, session or new_session())
            except DownloadError as exc:  # ChecksumMismatch included
                errors.append(exc)
                log.warning("%s", exc)
        if len(errors) == 1:
            raise errors[0]
        raise DownloadError(f"{dest.name}: every mirror failed: "
                            f"{'; '.join(str(e) for e in errors)}")


def _download(url: str, dest: Path, sha256: str, size: int | None,
              session: requests.Session) -> Path:
    if dest.exists():
        if sha256_file(dest) == sha256:
            dest.touch()  # used now: `bisector cache prune` goes by this time
            return dest
        log.warning("cached %s does not match its checksum; fetching again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    # we hold dest's lock, so no live process writes a .part of it: per-pid parts are
    # left by older versions; ours (.part) is resumed below
    for stale in dest.parent.glob(glob.escape(dest.name) + ".part?*"):
        stale.unlink(missing_ok=True)
    if size:
        have = part.stat().st_size if part.exists() else 0
        require_free(dest.parent, max(0, size - have) + (64 << 20),
                     f"downloading {dest.name}")
    try:
        _fetch_resuming(url, part, session, size, dest.name)
    except DownloadError:
        raise  # the partial file stays: the next attempt (or mirror) resumes it
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise os_error(exc, f"downloading {url}") from exc
    except BaseException:
        part.unlink(missing_ok=True)  # interrupted: nothing half-made is left behind
        raise
    got = sha256_file(part)
    if got != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(f"{url}: sha256 mismatch (expected {sha256}, got {got}); "
                               "the file was discarded")
    part.rename(dest)
    return dest


def _fetch_resuming(url: str, part: Path, session: requests.Session, size: int | None,
                    name: str) -> None:
    """Append the rest of ``url`` to ``part``, resuming with Range after a drop."""
    for attempt in range(1, BODY_ATTEMPTS + 1):
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have == size:
            return
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with session.get(url, stream=True, timeout=TIMEOUT, headers=headers) as r:
                if r.status_code == 416 and have:  # nothing left to send: verify what we have
                    return
                if r.status_code not in (200, 206):
                    raise DownloadError(f"cannot fetch {url}: HTTP {r.status_code}")
                resumed = r.status_code == 206
                if have and not resumed:
                    log.info("%s: the server ignored Range; starting over", url)
                    have = 0
                length = int(r.headers.get("Content-Length") or 0)
                total = size or (have + length if length else None)
                bar = Progress(f"download {name}", total)
                bar.update(have)
                with part.open("ab" if resumed else "wb") as fh:
                    # small chunks: what arrived before a drop is on disk to resume from
                    for chunk in r.iter_content(64 << 10):
                        fh.write(chunk)
                        bar.update(len(chunk))
                bar.close()
                return
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            if attempt == BODY_ATTEMPTS:
                raise DownloadError(f"cannot fetch {url}: {exc.__class__.__name__}: {exc} "
                                    f"(after {attempt} attempts)") from exc
            log.warning("%s: %s; resuming (attempt %d of %d)", url, exc.__class__.__name__,
                        attempt + 1, BODY_ATTEMPTS)
            time.sleep(min(8.0, 0.5 * 2 ** attempt))
        except requests.RequestException as exc:
            raise DownloadError(f"cannot fetch {url}: {exc.__class__.__name__}: {exc}") from exc
