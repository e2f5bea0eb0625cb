"""The demo scenario end to end, interrupted by kill -9 and resumed (slow).

Builds real kernels from the demo tree (cached after the first run), boots
them under TCG, and checks that ``bisector resume`` after a SIGKILL names the
injected culprit without repeating a finished step.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bisector import demo

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GRE = REPO / "reproducers" / "gre-ecn-mac-corruption.yaml"


def steps(db: Path) -> list[tuple[str, str]]:
    """The search's steps (culprit verification re-tests the same commits on purpose)."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as c:
        return [(r[0], r[1]) for r in c.execute(
            "SELECT stage, candidate FROM steps WHERE stage != 'confirm'")]


def test_demo_kill9_and_resume(tmp_path: Path) -> None:
    meta = demo.create(Path(os.environ.get("BISECTOR_DEMO_DIR",
                                           Path.home() / ".cache" / "bisector" / "demo")))
    env = dict(os.environ, BISECTOR_RUNS=str(tmp_path / "runs"))
    db = tmp_path / "bisector.db"
    cmd = [sys.executable, "-m", "bisector.cli", "bisect", "--repro", str(GRE),
           "--tree", str(meta["tree"]), "--good", "v6.1.192", "--bad", "main",
           "--report-dir", str(tmp_path / "report")]
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 3600
    while len(steps(db)) < 4:
        assert p.poll() is None, p.stdout.read().decode() if p.stdout else ""
        assert time.monotonic() < deadline
        time.sleep(1)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    time.sleep(2)
    before = steps(db)
    qemu = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True,
                          check=False).stdout
    assert str(tmp_path) not in qemu, "QEMU outlived kill -9 of bisector"
    r = subprocess.run([sys.executable, "-m", "bisector.cli", "resume"], env=env,
                       capture_output=True, text=True, timeout=3600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resuming campaign" in r.stderr
    after = steps(db)
    assert after[:len(before)] == before
    assert len(set(after)) == len(after), "a finished step was repeated"
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["result"]["culprit"]["sha"] == meta["culprit_sha"]
