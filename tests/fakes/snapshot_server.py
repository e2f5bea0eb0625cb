"""A stand-in for snapshot.debian.org on 127.0.0.1, with real .debs and signed indexes.

It speaks the part of snapshot's machine-readable API the Debian source uses,
in the shapes the real service answers with:

* ``/mr/binary/<package>/`` → ``{"result": [{"binary_version", "name", "source",
  "version"}]}``;
* ``/mr/binary/<package>/<version>/binfiles?fileinfo=1`` → ``{"result":
  [{"architecture", "hash"}], "fileinfo": {<sha1>: [{"archive_name", "first_seen",
  "path", "name", "size"}]}}`` (``fileinfo`` only when asked for);
* ``/mr/package/<source>/`` → ``{"package", "result": [{"version"}]}``, newest
  first as the real service lists them (the client must not rely on it);
* ``/mr/package/<source>/<version>/binpackages`` → ``{"package", "version",
  "result": [{"name", "version"}]}``: every binary the version built, the
  kernels among headers and debug packages;
* ``/file/<sha1>`` → the bytes;
* ``/archive/<archive_name>/<timestamp>/…`` → the archive as it was then
  (``dists/<suite>/InRelease``, ``Packages.xz``, ``pool/``), built with
  :func:`tests.fakes.archive.debian_archive` and signed with :mod:`tests.fakes.gpg`.

Unknown packages and versions are 404, as on the real service.  ``requests``
records every path asked for, so a test can tell which calls were made.
"""

from __future__ import annotations

import hashlib
import http.server
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from debian.debian_support import Version

from tests.fakes.archive import debian_archive, serve_handler
from tests.fakes.gpg import Signer, sign_suite


@dataclass
class SnapshotFarm:
    root: Path
    #: binary package → [(binary version, source package, source version)]
    binaries: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    #: (source package, source version) → [(binary package, binary version)] it built
    builds: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    #: (package, version) → [(architecture, sha1)]
    binfiles: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    fileinfo: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: sha1 → the file served as /file/<sha1>
    files: dict[str, Path] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def publish(self, archive_name: str, timestamp: str, suite: str,
                debs: Sequence[tuple[Path, str, str]], signers: Sequence[Signer],
                source: str = "linux") -> None:
        """``debs`` ((file, package, version)) of ``source`` (the package version is the
        source version, as for Debian's kernels) first seen in ``suite`` of
        ``archive_name`` at ``timestamp``, whose InRelease ``signers`` sign (none: no
        InRelease)."""
        tree = self.root / "archive" / archive_name / timestamp
        debian_archive(tree, suite, list(debs))
        if signers:
            sign_suite(tree, suite, signers)
        for deb, name, version in debs:
            sha1 = hashlib.sha1(deb.read_bytes()).hexdigest()
            self.built(source, version, [name])
            files = self.binfiles.setdefault((name, version), [])
            if ("amd64", sha1) not in files:
                files.append(("amd64", sha1))
            self.fileinfo.setdefault(sha1, []).append({
                "archive_name": archive_name, "first_seen": timestamp,
                "path": "/pool/main/l/linux", "name": deb.name,
                "size": deb.stat().st_size})
            self.files[sha1] = tree / "pool" / "main" / "l" / "linux" / deb.name

    def built(self, source: str, version: str, names: Sequence[str]) -> None:
        """``source`` ``version`` built the binaries ``names`` (at ``version``): the API
        lists them; only what :meth:`publish` gave has files and indexes."""
        built = self.builds.setdefault((source, version), [])
        for name in names:
            if (name, version) not in built:
                built.append((name, version))
            versions = self.binaries.setdefault(name, [])
            if all(v != version for v, _, _ in versions):
                versions.append((version, source, version))

    # ------------------------------------------------------------ answers
    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, str]:
        parts = [unquote(p) for p in path.split("/")]
        if path.startswith("/mr/binary/") and path.endswith("/") and len(parts) == 5:
            name = parts[3]
            if name not in self.binaries:
                return _not_found()
            result = [{"binary_version": v, "name": name, "source": src, "version": src_v}
                      for v, src, src_v in self.binaries[name]]
            return _json({"_comment": "foo", "binary": name, "result": result})
        if path.startswith("/mr/package/") and path.endswith("/") and len(parts) == 5:
            source = parts[3]
            versions = sorted({v for s, v in self.builds if s == source}, key=Version,
                              reverse=True)
            if not versions:
                return _not_found()
            return _json({"_comment": "foo", "package": source,
                          "result": [{"version": v} for v in versions]})
        if path.startswith("/mr/package/") and len(parts) == 6 and parts[5] == "binpackages":
            source, version = parts[3], parts[4]
            if (source, version) not in self.builds:
                return _not_found()
            return _json({"_comment": "foo", "package": source, "version": version,
                          "result": [{"name": n, "version": v}
                                     for n, v in self.builds[(source, version)]]})
        if path.startswith("/mr/binary/") and len(parts) == 6 and parts[5] == "binfiles":
            name, version = parts[3], parts[4]
            if (name, version) not in self.binfiles:
                return _not_found()
            files = self.binfiles[(name, version)]
            doc: dict[str, Any] = {
                "_comment": "foo", "binary": name, "binary_version": version,
                "result": [{"architecture": a, "hash": h} for a, h in files]}
            if query.get("fileinfo") == ["1"]:
                doc["fileinfo"] = {h: self.fileinfo[h] for _, h in files}
            return _json(doc)
        if path.startswith("/file/") and parts[2] in self.files:
            return 200, self.files[parts[2]].read_bytes(), "application/octet-stream"
        if path.startswith("/archive/"):
            target = (self.root / path.lstrip("/")).resolve()
            if target.is_relative_to(self.root.resolve()) and target.is_file():
                return 200, target.read_bytes(), "application/octet-stream"
        return _not_found()


def _json(doc: dict[str, Any]) -> tuple[int, bytes, str]:
    return 200, json.dumps(doc).encode(), "application/json"


def _not_found() -> tuple[int, bytes, str]:
    return 404, b"<html><body>404 Not Found</body></html>", "text/html"


@contextmanager
def serve_snapshot(farm: SnapshotFarm) -> Iterator[str]:
    """The farm on 127.0.0.1; yields its base URL (for ``BISECTOR_DEBIAN_SNAPSHOT``)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            farm.requests.append(url.path)
            status, body, ctype = farm.answer(url.path, parse_qs(url.query))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serve_handler(Handler) as url:
        yield url
