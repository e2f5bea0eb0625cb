"""Local stand-ins for remote kernel archives, with real .deb files.

``build_deb`` makes a genuine Debian package with dpkg-deb (the product unpacks
it with dpkg-deb and tarfile, exactly as it would a downloaded one);
``serve`` exposes a directory over HTTP on 127.0.0.1 with the autoindex-style
listings the Ubuntu mainline fetcher parses.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import lzma
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bisector import proc


def build_deb(dest: Path, package: str, version: str, files: dict[str, bytes],
              compress: str = "xz") -> Path:
    root = dest.parent / f".{dest.name}.root"
    (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: amd64\n"
        "Maintainer: test <test@example.invalid>\nDescription: test kernel\n")
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    proc.run(["dpkg-deb", "--root-owner-group", f"-Z{compress}", "--build", root, dest],
             timeout=600)
    return dest


def fake_kernel(tag: bytes) -> bytes:
    """Bytes that pass for a bzImage (setup header magic at 0x202) and end in ``tag``."""
    head = bytearray(0x400)
    head[0x202:0x206] = b"HdrS"
    return bytes(head) + tag


def kernel_image_deb(dest: Path, release: str, version: str, package: str | None = None,
                     modules: bool = True) -> Path:
    files = {f"boot/vmlinuz-{release}": fake_kernel(b"not-a-real-kernel-" + release.encode()),
             f"boot/config-{release}": b"CONFIG_VIRTIO_BLK=m\nCONFIG_EXT4_FS=m\nCONFIG_VETH=m\n"}
    if modules:
        files[f"lib/modules/{release}/modules.order"] = b""
    return build_deb(dest, package or f"linux-image-{release}", version, files)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_handler(handler: Callable[..., http.server.BaseHTTPRequestHandler],
                  ) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 (an ephemeral port) in a thread; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def serve(root: Path) -> Iterator[str]:
    with serve_handler(functools.partial(_Quiet, directory=str(root))) as url:
        yield url


def _indexes(root: Path, suite: str, paras: list[str]) -> None:
    """``dists/<suite>/{Release,main/binary-amd64/Packages.xz}`` for these paragraphs."""
    pk = root / "dists" / suite / "main" / "binary-amd64" / "Packages.xz"
    pk.parent.mkdir(parents=True, exist_ok=True)
    pk.write_bytes(lzma.compress("\n".join(paras).encode()))
    digest = hashlib.sha256(pk.read_bytes()).hexdigest()
    (root / "dists" / suite / "Release").write_text(
        f"Suite: {suite}\nSHA256:\n {digest} {pk.stat().st_size} main/binary-amd64/Packages.xz\n")


def debian_archive(root: Path, suite: str, debs: list[tuple[Path, str, str]]) -> None:
    """A minimal Debian archive: pool/ + dists/<suite>/{Release,main/binary-amd64/Packages.xz}.

    ``debs`` holds (deb file, package name, version).
    """
    paras = []
    for deb, name, version in debs:
        rel = f"pool/main/l/linux/{deb.name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(deb.read_bytes())
        paras.append(f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
                     f"Filename: {rel}\nSize: {deb.stat().st_size}\nSHA256: {sha256(deb)}\n")
    _indexes(root, suite, paras)


def cached_debian_archive(root: Path, debs: list[Path], suite: str = "bookworm") -> None:
    """A Debian archive on disk for real kernel .debs already downloaded (linked, not
    copied): ``name_version_arch.deb`` names give each package's name and version."""
    paras = []
    for deb in debs:
        name, version, _ = deb.name.split("_")
        rel = f"pool/main/l/linux/{deb.name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(deb.resolve())
        h = hashlib.sha256()
        with deb.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        paras.append(f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
                     f"Filename: {rel}\nSize: {deb.stat().st_size}\nSHA256: {h.hexdigest()}\n")
    _indexes(root, suite, paras)
