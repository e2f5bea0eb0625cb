"""Real sweeps: real Debian kernels booted under TCG, real reproducers over SSH.

The kernels are the cached ``debian:6.1.0-56`` and ``-57`` .debs (``make test``
fetches them), served by a Debian archive on 127.0.0.1, so a sweep's "newest 2
of series 6.1" is resolved by the real Debian source code with no traffic
beyond this host.  Mail goes to a real SMTP server (aiosmtpd) on 127.0.0.1, the
webhook to a local HTTP server.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from bisector.paths import cache_dir
from tests.fakes.archive import cached_debian_archive, serve

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]
GATE = REPO / "tests" / "data" / "reproducers" / "kernel-abi-gate.yaml"
REAL_CACHE = cache_dir()
ABIS = ("56", "57")


class World:
    """A temporary bisector home: the user's cached image and kernels, a local archive."""

    def __init__(self, tmp: Path, stack: ExitStack) -> None:
        self.tmp = tmp
        debs = [next(iter(sorted((REAL_CACHE / "downloads").glob(
            f"linux-image-6.1.0-{abi}-amd64-unsigned_*_amd64.deb"))), None) for abi in ABIS]
        if None in debs:
            pytest.fail(f"needs debian:6.1.0-{{{','.join(ABIS)}}} in {REAL_CACHE}/downloads: "
                        "`make test` fetches them (bisector kernels fetch …)")
        cache = tmp / "cache"
        cache.mkdir()
        for sub in ("images", "kernels", "downloads", "vmlinux"):
            (REAL_CACHE / sub).mkdir(parents=True, exist_ok=True)
            (cache / sub).symlink_to(REAL_CACHE / sub)
        cached_debian_archive(tmp / "archive", [d for d in debs if d is not None])
        url = stack.enter_context(serve(tmp / "archive"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BISECTOR_")}
        self.env.update(BISECTOR_CACHE=str(cache), BISECTOR_RUNS=str(tmp / "state" / "runs"),
                        BISECTOR_DEBIAN_ARCHIVES=f"{url}=bookworm",
                        BISECTOR_DEBIAN_KEYRING="none", BISECTOR_DEBIAN_SNAPSHOT="none",
                        BISECTOR_UBUNTU_MAINLINE_URL="http://127.0.0.1:9",
                        PYTHONUNBUFFERED="1")
        self.db = tmp / "state" / "bisector.db"

    def config(self, name: str, body: str) -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(f"name: {name}\nresults: {self.tmp / 'results'}\n"
                        "kernels:\n  debian-6.1:\n    debian: {series: '6.1', newest: 2}\n"
                        + body)
        return path

    def sweep(self, config: Path, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bisector.cli", "sweep", "--config",
                               str(config)], env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as conn:
            return list(conn.execute(sql))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        yield World(tmp_path, stack)


def _wait_for_cells(world: World, n: int, p: subprocess.Popen[bytes],
                    timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert p.poll() is None, "the sweep ended before it could be killed"
        if world.db.exists():
            try:
                if world.rows("SELECT COUNT(*) FROM sweep_cells")[0][0] >= n:  # type: ignore[operator]
                    return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.5)
    raise AssertionError(f"no {n} finished cell(s) after {timeout:.0f}s")


def test_example_sweep_killed_then_resumed_writes_every_report(world: World) -> None:
    """sweep.example.yaml's matrix (2 newest Debian 6.1 kernels × seeds 000 and 004),
    killed with SIGKILL after its first cell, finished by the next invocation."""
    cfg = world.config("example", f"reproducers:\n  - glob: {REPO}/reproducers/gre-ecn-*.yaml\n"
                                  f"  - glob: {REPO}/reproducers/ipmr-hairpin-ttl.yaml\n")
    p = subprocess.Popen([sys.executable, "-m", "bisector.cli", "sweep", "--config", str(cfg)],
                         env=world.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_cells(world, 1, p)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    (first_cell,) = world.rows("SELECT cell, finished FROM sweep_cells")
    assert world.rows("SELECT status FROM sweeps") == [("running",)]

    r = world.sweep(cfg)
    assert r.returncode == 0, r.stdout + r.stderr  # a new failure is not a new regression
    assert "resuming sweep 1" in r.stderr
    assert world.rows("SELECT id, status FROM sweeps") == [(1, "done")]
    cells = world.rows("SELECT cell, status, finished FROM sweep_cells ORDER BY cell")
    assert len(cells) == 4
    assert (first_cell[0], first_cell[1]) in {(c, f) for c, _, f in cells}  # not run again
    assert sorted(s for _, s, _ in cells) == ["bad", "bad", "good", "good"]

    sweep_dir = world.tmp / "results" / "sweep-1"
    report = json.loads((sweep_dir / "report.json").read_text())
    cats = {c["category"] for c in report["changes"]}
    assert cats == {"new failure", "new pass"}
    junit = ET.parse(sweep_dir / "junit.xml").getroot()
    cases = junit.findall(".//testcase")
    assert len(cases) == 4 and len(junit.findall(".//failure")) == 2
    assert "ipmr-hairpin-ttl" in (sweep_dir / "report.md").read_text()
    page = (sweep_dir / "index.html").read_text()
    assert "6.1.0-57" in page and "gre-ecn-mac-corruption" in page
    assert (world.tmp / "results" / "index.html").is_file()
    # no guest left behind by the killed sweep
    qemu = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True,
                          check=False).stdout
    assert str(world.tmp) not in qemu


def test_a_regression_is_reported_bisected_and_mailed(world: World) -> None:
    """Night 1 all GOOD; night 2 the newest kernel's cell turns BAD (the reproducer's
    bad_from parameter set to its ABI): a new regression, bisected to that kernel,
    one mail to a real SMTP server, one webhook call, exit 1."""
    from tests.unit.test_sweep_notify import smtp_server, webhook_server  # real servers

    with smtp_server() as smtp, webhook_server() as hook:
        notify = (f"notify:\n  email: {{host: 127.0.0.1, port: {smtp.port}, "
                  f"from: bot@example.org, to: [net@example.org]}}\n"
                  f"  webhook: {{url: '{hook.url}'}}\n")

        def night(bad_from: int) -> subprocess.CompletedProcess[str]:
            cfg = world.config("gate", f"reproducers:\n  - glob: {GATE}\n    params:\n"
                                       f"      default: {{bad_from: {bad_from}}}\n" + notify)
            return world.sweep(cfg)

        r1 = night(999)
        assert r1.returncode == 0, r1.stdout + r1.stderr
        r2 = night(57)
        assert r2.returncode == 1, r2.stdout + r2.stderr
        assert "REGRESSION debian-6.1: kernel-abi-gate [default] — found: debian:6.1.0-57" \
            in r2.stdout, r2.stdout + r2.stderr
        report = json.loads((world.tmp / "results" / "sweep-2" / "report.json").read_text())
        (reg,) = report["regressions"]
        assert (reg["last_good"], reg["first_bad"]) == ("debian:6.1.0-56", "debian:6.1.0-57")
        assert reg["campaign_id"] and Path(reg["campaign_report"]).is_file()
        assert "ABI 57: at or past 57" in reg["excerpt"]
        mail = smtp.one("[REGRESSION]")
        assert mail.subject == "[REGRESSION] debian-6.1: kernel-abi-gate"
        assert "#regzbot introduced: debian:6.1.0-56..debian:6.1.0-57" in mail.body
        assert "bisector run --kernel debian:6.1.0-57" in mail.body
        assert "ABI 57: at or past 57" in mail.body  # the failure's output
        assert [b["counts"]["new regression"] for b in hook.bodies] == [0, 1]


@pytest.mark.slow
def test_a_branch_whose_tip_moved_is_bisected_to_the_demo_culprit(tmp_path: Path) -> None:
    """A git line: the demo tree's branch at v6.1.192 one night (GOOD), at the demo's
    ``main`` the next (BAD, seed 000's bug injected): the sweep reports a new
    regression and its bisection names — and verifies — the injected commit."""
    from bisector import demo

    meta = demo.create(Path(os.environ.get("BISECTOR_DEMO_DIR",
                                           Path.home() / ".cache" / "bisector" / "demo")))
    tree = Path(str(meta["tree"]))
    branch = f"bisector-test-sweep-{os.getpid()}"
    env = dict(os.environ, BISECTOR_RUNS=str(tmp_path / "state" / "runs"))
    cfg = tmp_path / "git-line.yaml"
    cfg.write_text(f"results: {tmp_path / 'results'}\nkernels:\n  demo:\n"
                   f"    git: {{tree: {tree}, branches: [{branch}]}}\n"
                   f"reproducers:\n  - glob: {REPO}/reproducers/gre-ecn-mac-corruption.yaml\n")

    def sweep() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bisector.cli", "sweep", "--config",
                               str(cfg)], env=env, capture_output=True, text=True,
                              timeout=3600, stdin=subprocess.DEVNULL, check=False)

    git = ["git", "-C", str(tree)]
    subprocess.run([*git, "branch", "-f", branch, str(meta["base"])], check=True)
    try:
        first = sweep()
        assert first.returncode == 0, first.stdout + first.stderr
        subprocess.run([*git, "branch", "-f", branch, "main"], check=True)
        second = sweep()
    finally:
        subprocess.run([*git, "branch", "-D", branch], check=False, capture_output=True)
    assert second.returncode == 1, second.stdout + second.stderr
    report = json.loads((tmp_path / "results" / "sweep-2" / "report.json").read_text())
    (reg,) = report["regressions"]
    assert reg["status"] == "found" and reg["culprit"] == meta["culprit_sha"], reg
    campaign = json.loads((Path(reg["campaign_report"]).parent / "report.json").read_text())
    assert campaign["result"]["verification"]["status"] == "confirmed", campaign["result"]
