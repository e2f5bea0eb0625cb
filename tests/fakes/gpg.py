"""Throw-away GPG keys that sign archives the way Debian's are signed.

``signer`` makes a real key (ed25519, no passphrase) in its own GNUPGHOME,
exports the public half as a keyring file for gpgv, and clearsigns
``Release`` files into ``InRelease``, so the product's signature check runs
against genuine signatures and not a stub.  The gpg-agent the key needs is
stopped when the context ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bisector import proc


@dataclass(frozen=True)
class Signer:
    home: Path
    uid: str
    #: the public key alone, as a keyring file gpgv takes with ``--keyring``
    keyring: Path

    def gpg(self, *args: str | Path, input: str | None = None) -> str:
        return proc.run(["gpg", "--batch", "--yes", "--pinentry-mode", "loopback",
                         "--passphrase", "", *args], env={"GNUPGHOME": str(self.home)},
                        input=input, timeout=120).stdout


def clearsign(text: str, signers: Sequence[Signer]) -> str:
    """``text`` clearsigned by every key of ``signers`` (Debian signs with several)."""
    first = signers[0]
    # all keys must be in one home to sign in one go: import the others' secret keys
    for other in signers[1:]:
        secret = proc.run_bytes(["gpg", "--batch", "--pinentry-mode", "loopback",
                                 "--passphrase", "", "--export-secret-keys", other.uid],
                                env={"GNUPGHOME": str(other.home)}, timeout=120).stdout
        proc.run(["gpg", "--batch", "--import"], env={"GNUPGHOME": str(first.home)},
                 input=secret, timeout=120)
    users: list[str | Path] = []
    for s in signers:
        users += ["--local-user", s.uid]
    return first.gpg(*users, "--clearsign", "--output", "-", input=text)


def sign_suite(root: Path, suite: str, signers: Sequence[Signer]) -> Path:
    """``dists/<suite>/InRelease`` from the ``Release`` :func:`tests.fakes.archive.
    debian_archive` wrote."""
    dists = root / "dists" / suite
    out = dists / "InRelease"
    out.write_text(clearsign((dists / "Release").read_text(), signers))
    return out


@contextmanager
def signer(where: Path, name: str) -> Iterator[Signer]:
    home = where / f"gnupg-{name}"
    home.mkdir(mode=0o700, parents=True)
    uid = f"<{name}@example.invalid>"
    s = Signer(home, uid, where / f"{name}.gpg")
    try:
        s.gpg("--quick-gen-key", f"{name} {uid}", "ed25519", "sign", "never")
        s.keyring.write_bytes(proc.run_bytes(["gpg", "--batch", "--export", uid],
                                             env={"GNUPGHOME": str(home)},
                                             timeout=120).stdout)
        yield s
    finally:
        proc.run(["gpgconf", "--kill", "all"], env={"GNUPGHOME": str(home)}, timeout=60,
                 check=False)
