"""`bisector cache du / prune`: least recently used first, never what a resumable
campaign may need, never what another process holds."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from bisector import cache, cli
from bisector.kernel.base import LAST_USED
from bisector.store import Store

DAY = 86400.0


def artifact(tmp_cache: Path, kind: str, name: str, age_days: float, size: int = 1000) -> Path:
    d = tmp_cache / "kernels" / kind / name
    d.mkdir(parents=True)
    (d / "vmlinuz").write_bytes(b"x" * size)
    t = time.time() - age_days * DAY
    (d / LAST_USED).touch()
    os.utime(d / LAST_USED, (t, t))
    return d


def download(tmp_cache: Path, name: str, age_days: float) -> Path:
    f = tmp_cache / "downloads" / name
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b"deb")
    t = time.time() - age_days * DAY
    os.utime(f, (t, t))
    return f


def test_keep_n_most_recent_per_kind(tmp_cache: Path) -> None:
    old = [artifact(tmp_cache, "debian", f"k{i}", age_days=10 - i) for i in range(4)]
    git = artifact(tmp_cache, "git", "g0", age_days=50)
    chosen = cache.select(cache.prunable(), keep=2, older_than=None, protect_since=None)
    assert {e.path for e in chosen} == {old[0], old[1]}  # git's only artifact is kept
    assert git.exists()


def test_older_than_and_downloads(tmp_cache: Path) -> None:
    stale = artifact(tmp_cache, "ubuntu-mainline", "m0", age_days=40)
    fresh = artifact(tmp_cache, "ubuntu-mainline", "m1", age_days=1)
    deb = download(tmp_cache, "linux-image.deb", age_days=40)
    removed = cache.remove(cache.select(cache.prunable(), keep=None, older_than=30 * DAY,
                                        protect_since=None))
    assert {e.path for e in removed} == {stale, deb}
    assert not stale.exists() and not deb.exists() and fresh.exists()


def test_what_a_resumable_campaign_used_is_never_pruned(tmp_cache: Path) -> None:
    used = artifact(tmp_cache, "debian", "in-use", age_days=0.5)
    unused = artifact(tmp_cache, "debian", "stale", age_days=5)
    since = time.time() - 1 * DAY  # a campaign still RUNNING started a day ago
    chosen = cache.select(cache.prunable(), keep=0, older_than=None, protect_since=since)
    assert [e.path for e in chosen] == [unused]
    assert used.exists()


def test_an_artifact_being_built_is_skipped(tmp_cache: Path) -> None:
    busy = artifact(tmp_cache, "git", "busy", age_days=9)
    with open(busy.with_name("busy.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        removed = cache.remove(cache.select(cache.prunable(), keep=0, older_than=None,
                                            protect_since=None))
    assert removed == [] and busy.exists()


def test_prune_through_the_cli_protects_a_running_campaign(tmp_cache: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    stale = artifact(tmp_cache, "debian", "stale", age_days=9)
    Store().create("k", {"repro": "x"})  # RUNNING, created now
    recent = artifact(tmp_cache, "debian", "recent", age_days=0)
    assert cli.main(["cache", "prune", "--keep", "0"]) == 0
    out = capsys.readouterr().out
    assert f"removed {stale}" in out and not stale.exists() and recent.exists()
    assert "resumable campaign" in out
    assert cli.main(["cache", "prune"]) == 2  # nothing asked for
    assert cli.main(["cache", "prune", "--older-than", "soon"]) == 2


def test_du_reports_each_part(tmp_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact(tmp_cache, "debian", "k", age_days=1, size=3 << 20)
    (tmp_cache / "ccache").mkdir()
    (tmp_cache / "ccache" / "obj").write_bytes(b"y" * (2 << 20))
    assert cli.main(["cache", "du"]) == 0
    out = capsys.readouterr().out
    assert "3 MiB  kernels/debian" in out and "2 MiB  ccache" in out and "5 MiB  total" in out


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * DAY), ("12h", 43200.0),
                                               ("90m", 5400.0), ("15", 15.0)])
def test_ages(text: str, seconds: float) -> None:
    assert cache.parse_age(text) == seconds
