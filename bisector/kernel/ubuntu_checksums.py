"""A mainline folder's ``CHECKSUMS``, trusted only when signed by the pinned key.

The sha256 sums are what every downloaded .deb is checked against, so they are
only as good as ``CHECKSUMS.gpg``: gpgv checks it against a keyring, and the
signer must be the pinned key (see :mod:`bisector.kernel.ubuntu` for where the
keyring and the fingerprint come from).  Without a keyring the sums are used
with a warning, and the verdict says so.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import requests

from .. import proc
from ..errors import ChecksumMismatch, DownloadError
from .fetch import get_bytes

log = logging.getLogger(__name__)


class SignatureRefused(ChecksumMismatch):
    """``CHECKSUMS`` is not signed by the pinned key: its sha256 sums cannot be trusted,
    so nothing it lists is downloaded (let alone booted)."""


def parse_checksums(text: str) -> dict[str, str]:
    """``filename → sha256`` from a CHECKSUMS file (sha1 lines are ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            out[Path(parts[1].lstrip("*")).name] = parts[0]
    return out


class ChecksumVerifier:
    """Reads a folder's ``CHECKSUMS`` and establishes whether its signature holds.

    ``keyring`` None means "not checked", with ``unchecked`` saying why (it ends
    up in the artifact's meta); ``fingerprint`` is the only signer accepted.
    """

    def __init__(self, keyring: Path | None, unchecked: str, fingerprint: str,
                 session: requests.Session) -> None:
        self.keyring = keyring
        self.unchecked = unchecked
        self.fingerprint = fingerprint
        self.session = session

    def checksums(self, folder_url: str) -> tuple[dict[str, str], str]:
        """sha256 sums from ``<folder_url>CHECKSUMS``, and what was established about
        its signature (a refused signature raises :class:`SignatureRefused`)."""
        url = f"{folder_url}CHECKSUMS"
        raw = get_bytes(url, self.session)
        if self.keyring is None:
            note = f"not checked: {self.unchecked}"
            log.warning("%s: signature %s", url, note)
        else:
            try:
                sig = get_bytes(f"{url}.gpg", self.session)
            except DownloadError as exc:
                raise SignatureRefused(f"{url}: no signature to check ({exc}); "
                                       "refusing unsigned checksums") from exc
            note = self.verify(url, raw, sig)
        return parse_checksums(raw.decode("utf-8", errors="replace")), note

    def verify(self, url: str, data: bytes, sig: bytes) -> str:
        """gpgv's verdict on ``sig`` over ``data``, accepted only for the pinned key.

        gpgv alone accepts a signature by *any* key in the keyring; the
        ``VALIDSIG`` status line names the signing key (and its primary key),
        which must be :attr:`fingerprint`.
        """
        assert self.keyring is not None
        with tempfile.TemporaryDirectory() as tmp:
            d, s = Path(tmp) / "CHECKSUMS", Path(tmp) / "CHECKSUMS.gpg"
            d.write_bytes(data)
            s.write_bytes(sig)
            res = proc.run(["gpgv", "--status-fd", "1", "--keyring",
                            self.keyring.resolve(), s, d], timeout=60, check=False)
        status = [line.split()[1:] for line in res.stdout.splitlines()
                  if line.startswith("[GNUPG:] ")]
        kinds = {f[0] for f in status if f}
        why = (res.stderr.strip().splitlines() or ["no output"])[-1]
        if "BADSIG" in kinds:
            raise SignatureRefused(f"{url}: signature mismatch: CHECKSUMS is not what was "
                                   f"signed (tampered or corrupt): {why}")
        if res.returncode != 0 or "VALIDSIG" not in kinds:
            if "NO_PUBKEY" in kinds or "ERRSIG" in kinds:
                raise SignatureRefused(f"{url}: signed by a key that is not in "
                                       f"{self.keyring}: {why}")
            raise SignatureRefused(f"{url}: gpgv did not accept CHECKSUMS.gpg: {why}")
        signers = {x.upper() for f in status if f[0] == "VALIDSIG" for x in (f[1], f[-1])}
        if self.fingerprint not in signers:
            raise SignatureRefused(f"{url}: signed by {', '.join(sorted(signers))}, not by the "
                                   f"pinned key {self.fingerprint}: refused, although "
                                   f"{self.keyring} holds the signer's key")
        return f"verified: signed by {self.fingerprint}"
