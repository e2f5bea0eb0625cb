"""Downloads that are verified before anything uses them.

A file is streamed to ``<name>.part``, hashed while it arrives, compared with
the checksum the archive published and only then renamed into place.  A
mismatch deletes the bytes and raises :class:`ChecksumMismatch`: a corrupt or
tampered kernel is never booted.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import requests

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


def get_bytes(url: str, session: requests.Session | None = None) -> bytes:
    """Small files (indexes, checksum lists)."""
    s = session or requests.Session()
    try:
        r = s.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot fetch {url}: {exc.__class__.__name__}: {exc}") from exc
    if r.status_code != 200:
        raise DownloadError(f"cannot fetch {url}: HTTP {r.status_code}")
    return r.content


def download(url: str, dest: Path, sha256: str, *, size: int | None = None,
             session: requests.Session | None = None) -> Path:
    """Fetch ``url`` to ``dest`` unless a verified copy is already there."""
    with locked(dest):
        return _download(url, dest, sha256.lower(), size, session)


def _download(url: str, dest: Path, sha256: str, size: int | None,
              session: requests.Session | None) -> Path:
    if dest.exists():
        if sha256_file(dest) == sha256:
            return dest
        log.warning("cached %s does not match its checksum; fetching again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if size:
        require_free(dest.parent, size + (64 << 20), f"downloading {dest.name}")
    part = dest.with_name(dest.name + f".part{os.getpid()}")
    s = session or requests.Session()
    h = hashlib.sha256()
    try:
        with s.get(url, stream=True, timeout=TIMEOUT) as r:
            if r.status_code != 200:
                raise DownloadError(f"cannot fetch {url}: HTTP {r.status_code}")
            total = size or int(r.headers.get("Content-Length") or 0) or None
            bar = Progress(f"download {dest.name}", total)
            with part.open("wb") as fh:
                for chunk in r.iter_content(1 << 20):
                    fh.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
            bar.close()
    except requests.RequestException as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"cannot fetch {url}: {exc.__class__.__name__}: {exc}") from exc
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise os_error(exc, f"downloading {url}") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    got = h.hexdigest()
    if got != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(f"{url}: sha256 mismatch (expected {sha256}, got {got}); "
                               "the file was discarded")
    part.rename(dest)
    return dest
