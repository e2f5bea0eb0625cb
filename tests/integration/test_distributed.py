"""Scale-out on a real Dask cluster: a scheduler and two worker *processes* on 127.0.0.1.

The sweep's cells are real (TCG boots of the cached Debian kernels, the
kernel-abi-gate reproducer over SSH, served as in test_sweep_real.py).  One
worker is killed with SIGKILL while it holds a cell: Dask re-runs that cell on
the other worker, and the caller — the only writer — records every cell once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.integration.test_sweep_real import GATE, World

pytestmark = pytest.mark.vm

DASK = Path(sys.executable).parent / "dask"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, tmp: Path, env: dict[str, str], stack: ExitStack) -> None:
        self.address = f"tcp://127.0.0.1:{_port()}"
        port = self.address.rsplit(":", 1)[1]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._spawn("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port",
                                  port, "--no-dashboard"], tmp, env, stack)
        for name in ("wA", "wB"):
            # no nanny: the worker is the process we kill (a nanny would restart it)
            self._spawn(name, [str(DASK), "worker", self.address, "--nthreads", "1",
                               "--resources", "qemu=1", "--name", name, "--no-dashboard",
                               "--no-nanny", "--host", "127.0.0.1"], tmp, env, stack)
        import distributed

        self.client = distributed.Client(self.address, timeout=60)
        stack.callback(self.client.close)
        self.client.wait_for_workers(2, timeout=120)

    def _spawn(self, name: str, argv: list[str], tmp: Path, env: dict[str, str],
               stack: ExitStack) -> None:
        log = (tmp / f"{name}.log").open("wb")
        p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = p

        def stop() -> None:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            log.close()
        stack.callback(stop)

    def holder_of_a_cell(self, timeout: float = 600) -> tuple[str, str]:
        """(worker name, cell task key) of a worker running a cell right now."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            names = {a: w["name"] for a, w in
                     self.client.scheduler_info(n_workers=-1)["workers"].items()}
            for addr, keys in self.client.processing().items():
                cells = [k for k in keys if str(k).startswith("cell-")]
                if cells:
                    return names[addr], str(cells[0])
            time.sleep(0.2)
        raise AssertionError("no worker picked up a cell")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        yield World(tmp_path, stack)


def test_sweep_on_two_workers_survives_a_killed_worker(world: World) -> None:
    env = dict(world.env, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    with ExitStack() as stack:
        cluster = Cluster(world.tmp, env, stack)
        cfg = world.config("dask", f"reproducers:\n  - glob: {GATE}\n    params:\n"
                                   "      never: {bad_from: 999}\n      57on: {bad_from: 57}\n"
                                   "run: {cpus: 1}\n"
                                   f"scheduler: {cluster.address}\n")
        sweep = subprocess.Popen([sys.executable, "-m", "bisector.cli", "sweep", "--config",
                                  str(cfg), "--no-bisect"], env=world.env,
                                 stdout=(world.tmp / "sweep.out").open("wb"),
                                 stderr=(world.tmp / "sweep.err").open("wb"),
                                 stdin=subprocess.DEVNULL)
        stack.callback(sweep.kill)
        # let both workers start a boot, then kill one while it holds its cell
        victim, key = cluster.holder_of_a_cell()
        time.sleep(3)
        os.killpg(cluster.procs[victim].pid, signal.SIGKILL)
        code = sweep.wait(timeout=1200)
        out = (world.tmp / "sweep.out").read_text() + (world.tmp / "sweep.err").read_text()
        assert code == 0, out  # first night: new failures/passes, no regression
        assert "2 worker(s) with the qemu resource" in out, out
        # `bisector run --scheduler`: the run on the surviving worker, the verdict here
        run = subprocess.run([sys.executable, "-m", "bisector.cli", "run", "--kernel",
                              "debian:6.1.0-57", "--repro", str(GATE), "--param",
                              "bad_from=57", "--scheduler", cluster.address, "--run-dir",
                              str(world.tmp / "one-run")], env=world.env, capture_output=True,
                             text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
        assert run.returncode == 1, run.stdout + run.stderr  # BAD, git bisect run's way
        assert run.stdout.startswith("BAD: exit status 1"), run.stdout
    rows = world.rows("SELECT cell, reproducer, params, kernel, status, result "
                      "FROM sweep_cells")
    assert len(rows) == 4 and len({r[0] for r in rows}) == 4, rows  # all, each once
    verdicts = {(r[2], r[3]): r[4] for r in rows}
    assert verdicts == {("never", "debian:6.1.0-56"): "good",
                        ("never", "debian:6.1.0-57"): "good",
                        ("57on", "debian:6.1.0-56"): "good",
                        ("57on", "debian:6.1.0-57"): "bad"}, verdicts
    # the killed worker's cell was run again, and finished, by the survivor
    survivor = cluster.procs[({"wA", "wB"} - {victim}).pop()].pid
    import json

    ran_on = {r[0]: json.loads(str(r[5]))["worker"] for r in rows}
    assert ran_on[key.split("-")[2]].endswith(f":{survivor}"), (ran_on, survivor)
    assert all(w.endswith(f":{survivor}") or w.endswith(
        f":{cluster.procs[victim].pid}") for w in ran_on.values())


@pytest.mark.slow
def test_multisection_on_the_demo_tree_takes_fewer_rounds_with_two_workers(
        tmp_path: Path) -> None:
    """``bisector bisect --scheduler`` on the demo tree (make demo's culprit): with 2
    workers each round tests 2 commits, so the git stage needs fewer rounds than with
    1 worker, and names the same injected commit."""
    import json
    import re

    from bisector import demo

    meta = demo.create(Path(os.environ.get("BISECTOR_DEMO_DIR",
                                           Path.home() / ".cache" / "bisector" / "demo")))
    repo = Path(__file__).resolve().parents[2]
    rounds = {}
    for workers in (1, 2):
        env = dict(os.environ, BISECTOR_RUNS=str(tmp_path / f"k{workers}" / "runs"),
                   PYTHONPATH=str(repo))
        with ExitStack() as stack:
            cluster = Cluster(tmp_path, env, stack)
            if workers == 1:
                os.killpg(cluster.procs["wB"].pid, signal.SIGKILL)
                end = time.monotonic() + 60
                while len(cluster.client.scheduler_info()["workers"]) > 1:
                    assert time.monotonic() < end
                    time.sleep(0.5)
            r = subprocess.run(
                [sys.executable, "-m", "bisector.cli", "bisect", "--repro",
                 str(repo / "reproducers" / "gre-ecn-mac-corruption.yaml"), "--tree",
                 str(meta["tree"]), "--good", str(meta["base"]), "--bad", "main",
                 "--scheduler", cluster.address, "--no-verify-culprit",
                 "--report-dir", str(tmp_path / f"k{workers}" / "report")],
                env=env, capture_output=True, text=True, timeout=3600,
                stdin=subprocess.DEVNULL, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"{workers} worker(s), {workers} commit(s) per round" in r.stderr, r.stderr
        report = json.loads((tmp_path / f"k{workers}" / "report" / "report.json").read_text())
        assert report["result"]["culprit"]["sha"] == meta["culprit_sha"]
        m = re.search(r"git stage: (\d+) round\(s\)", r.stderr)
        assert m, r.stderr
        rounds[workers] = int(m.group(1))
    print(f"git stage rounds on the demo tree: {rounds} (workers → rounds)")
    assert rounds[2] < rounds[1], rounds
