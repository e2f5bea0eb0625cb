"""The Ubuntu mainline archive's top index, and its version folders read with a cache.

Knowing whether a version's build is usable costs a request per folder, and a
cold ``kernels list ubuntu-mainline`` reads hundreds of them: so listings
(:class:`~bisector.kernel.ubuntu_listing.Listing`, facts only) are cached per
archive and arch, and folders not cached are read in parallel.  The top index
shows each folder's "last modified" date; a cached listing holds while that
date has not changed (and a TTL has not run out).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import requests

from ..errors import BisectorError, DownloadError, UserError
from ..paths import cache_dir, slug, write_atomic
from ..progress import Progress
from .fetch import get_bytes, new_session
from .ubuntu_listing import VERSION_DIR, BuildState, Listing, links, read_listing, version_key

log = logging.getLogger(__name__)

#: folder listings (build status) are reused for this long when the index shows no
#: dates; like debian.py's INDEX_TTL
INDEX_TTL = 6 * 3600
#: … and for this long while the index's date of the folder has not changed
DATED_TTL = 7 * 24 * 3600
#: parallel requests when a listing reads many folders (a cold ``kernels list``)
LIST_WORKERS = 8

#: a row of the top index: the folder and its "last modified" column (Apache)
_INDEX_ROW = re.compile(r'href="(v[^"/]+)/"[^\n]*?(\d{4}-\d{2}-\d{2} \d{2}:\d{2})')

_local = threading.local()


def _thread_session() -> requests.Session:
    """One session per listing thread (a Session is not promised to be thread-safe)."""
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = _local.session = new_session()
    return s


class FolderIndex:
    """The version folders of one archive (``base_url``), read through ``session``.

    Arch and flavour are arguments rather than state: the source they serve may
    switch them (``kernels list --arch``) after this is made.
    """

    def __init__(self, base_url: str, session: requests.Session) -> None:
        self.base_url = base_url
        self.session = session

    def index(self) -> dict[str, str]:
        """Version folders of the top page → their "last modified" date ("" if not shown)."""
        page = get_bytes(self.base_url, self.session).decode("utf-8", errors="replace")
        dates = dict(_INDEX_ROW.findall(page))
        return {h.rstrip("/"): dates.get(h.rstrip("/"), "")
                for h in links(page) if VERSION_DIR.match(h)}

    def versions(self) -> list[str]:
        return sorted(self.index(), key=version_key)

    def listing(self, version: str, arch: str,
                session: requests.Session | None = None) -> Listing:
        """What the folder of ``version`` holds now (fetched, never from the cache)."""
        return read_listing(self.base_url, version, arch, session or self.session)

    # ---------------------------------------------------------------- cache
    def _cache_file(self, version: str, arch: str) -> Path:
        return (cache_dir() / "ubuntu-mainline-index" / slug(f"{self.base_url}_{arch}")
                / f"{version}.json")

    def _store(self, listing: Listing, date: str) -> None:
        path = self._cache_file(listing.version, listing.arch)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps({"index_date": date, "listing": asdict(listing)}))
        except (OSError, BisectorError) as exc:  # a cache not written only costs time
            log.info("not caching %s: %s", path, exc)

    def _cached(self, version: str, arch: str, date: str) -> Listing | None:
        """The cached listing, while the index's date of the folder is the one it was
        read at and it is younger than the TTL (longer when the index shows dates)."""
        path = self._cache_file(version, arch)
        try:
            data = json.loads(path.read_text())
            age = time.time() - path.stat().st_mtime
            if data.get("index_date", "") != date or age >= (DATED_TTL if date else INDEX_TTL):
                return None
            return Listing(**data["listing"])
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def states(self, versions: Sequence[str], index: dict[str, str], arch: str,
               flavour: str) -> dict[str, BuildState]:
        """Build state of each version: cached listings, the rest fetched in parallel
        (``index`` is :meth:`index`'s answer, whose dates keep the cache honest)."""
        out: dict[str, BuildState] = {}
        todo = []
        for v in versions:
            hit = self._cached(v, arch, index.get(v, ""))
            if hit is not None:
                out[v] = hit.state(flavour)
            else:
                todo.append(v)

        def one(v: str) -> BuildState:
            try:
                fresh = self.listing(v, arch, _thread_session())
                self._store(fresh, index.get(v, ""))
                return fresh.state(flavour)
            except (DownloadError, UserError) as exc:  # one unreadable folder: say so, go on
                return BuildState(False, f"folder not readable: {exc}")

        if len(todo) <= 1:
            out.update((v, one(v)) for v in todo)
            return out
        bar = Progress(f"ubuntu-mainline: reading {len(todo)} version folders", len(todo),
                       unit="")
        with ThreadPoolExecutor(max_workers=LIST_WORKERS) as pool:
            futures = {pool.submit(one, v): v for v in todo}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
        bar.close()
        return out
