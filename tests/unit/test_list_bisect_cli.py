"""`bisector bisect` over prebuilt Debian kernels, through the real CLI, verification on.

Everything is real — the CLI, the campaign, the Debian fetcher against a local
archive on 127.0.0.1 (real .debs, sha256 checked), unpacking, the config check,
the store and the reports — except the VM boundary (`runner.boot_and_test`),
which answers by kernel release as a reproducer would.  This is the README's
example (`--good debian:6.1.0-47 --bad debian:6.1.0-56`) and its fix-hunting
twin; both crashed before testing anything when endpoint checks went down the
git path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bisector import cli
from bisector.verdict import Outcome, Verdict
from tests.fakes.archive import serve
from tests.fakes.kernel_archives import config_text, debian_kernels

REPO = Path(__file__).resolve().parents[2]
GRE = REPO / "reproducers" / "gre-ecn-mac-corruption.yaml"
#: ABI → Debian version (the upstream release it packages)
KERNELS = {47: "6.1.170-1", 50: "6.1.176-1", 53: "6.1.187-1", 54: "6.1.190-1",
           56: "6.1.192-1", 57: "6.1.193-1"}
CONFIG = config_text(["NET_NS", "VETH", "NET_IPGRE_DEMUX", "NET_IPGRE", "PACKET", "EXT4_FS"])


@pytest.fixture
def archive(tmp_path: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    root = debian_kernels(tmp_path / "debian", tmp_path, KERNELS, CONFIG)
    with serve(root) as url:
        monkeypatch.setenv("BISECTOR_DEBIAN_ARCHIVES", f"{url}=bookworm")
        monkeypatch.setenv("BISECTOR_DEBIAN_KEYRING", "none")  # the local archive is unsigned
        yield url


def boots_like(monkeypatch: pytest.MonkeyPatch, first_new: int, find_fix: bool) -> list[str]:
    """Replace the VM: kernels from ABI ``first_new`` on show the new state."""
    booted: list[str] = []

    def fake(art, repro, run_dir, opts, timer, say):  # type: ignore[no-untyped-def]
        abi = int(art.release.split("-")[1])
        booted.append(art.spec)
        new = abi >= first_new
        bad = new != find_fix
        return Outcome(Verdict.BAD if bad else Verdict.GOOD, f"scripted for {art.release}")

    monkeypatch.setattr("bisector.runner.boot_and_test", fake)
    return booted


@pytest.mark.parametrize(("find_fix", "argv", "first", "last"), [
    (False, ["--good", "debian:6.1.0-47", "--bad", "debian:6.1.0-56"],
     "first bad kernel: debian:6.1.0-54 (last good: debian:6.1.0-53)",
     "first bad debian:6.1.0-54 = v6.1.190, last good debian:6.1.0-53 = v6.1.187: "
     "the change is in v6.1.187..v6.1.190"),
    (True, ["--bad", "debian:6.1.0-47", "--good", "debian:6.1.0-57", "--find-fix"],
     "first fixed kernel: debian:6.1.0-54 (last broken: debian:6.1.0-53)",
     "first fixed debian:6.1.0-54 = v6.1.190, last broken debian:6.1.0-53 = v6.1.187: "
     "the fix is in v6.1.187..v6.1.190"),
])
def test_list_bisection_through_the_cli(archive: str, tmp_path: Path, find_fix: bool,
                                        argv: list[str], first: str, last: str,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    booted = boots_like(monkeypatch, 54, find_fix)
    code = cli.main(["bisect", "--repro", str(GRE), *argv,
                     "--report-dir", str(tmp_path / "report")])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.splitlines()
    assert lines[0] == first
    assert lines[1] == f"  {last}"
    # the endpoints were tested first (verification on: old end, then new end), and
    # no kernel twice
    old_end, new_end = (argv[1], argv[3])
    assert booted[:2] == [old_end, new_end]
    assert len(booted) == len(set(booted)) <= 2 + 3
    md = (tmp_path / "report" / "report.md").read_text()
    assert last.split(": ")[-1] in md
    cont = "--good v6.1.190 --bad v6.1.187" if find_fix else "--good v6.1.187 --bad v6.1.190"
    assert cont in md and "--tree PATH" in md
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["status"] == "done"
    assert data["result"]["first_kernel"] == "debian:6.1.0-54"
