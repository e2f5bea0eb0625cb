"""runner.run is the one place where "this kernel cannot be tested" becomes SKIP.

The kernel resolver and the VM boundary are scripted; the runner, the tester
and the evidence they write are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bisector import reproducer, runner
from bisector.errors import InfraError, Untestable
from bisector.kernel.base import KernelArtifact, KernelUnavailable
from bisector.kernel.gitbuild import BuildFailure, BuildStats
from bisector.outcomes import Stage
from bisector.tester import KernelTester
from bisector.verdict import Outcome, Verdict
from bisector.vm import BootFailure

REPO = Path(__file__).resolve().parents[2]
GRE = REPO / "reproducers" / "gre-ecn-mac-corruption.yaml"


class Resolver:
    """Stands in for KernelResolver: returns an artifact or raises what it is given."""

    def __init__(self, result: KernelArtifact | Exception, stats: BuildStats | None = None
                 ) -> None:
        self.result, self.stats = result, stats

    def resolve(self, spec: str) -> KernelArtifact:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def build_stats(self, spec: str) -> BuildStats | None:
        return self.stats


def artifact(tmp_path: Path, config: str | None) -> KernelArtifact:
    root = tmp_path / "kernel"
    root.mkdir(exist_ok=True)
    cfg = None
    if config is not None:
        cfg = root / "config"
        cfg.write_text(config)
    return KernelArtifact(spec="git:abc", release="6.1.0", image=root / "bzImage",
                          modules=None, config=cfg, root=root)


FULL = "".join(f"CONFIG_{o}=y\n" for o in
               ("NET_NS", "VETH", "NET_IPGRE_DEMUX", "NET_IPGRE", "PACKET"))


@pytest.mark.parametrize(("error", "reason"), [
    (BuildFailure("git:abc does not build: error: x", Path("/logs/build.log")), "does not build"),
    (KernelUnavailable("ubuntu-mainline:v5.7: the amd64 build failed"), "build failed"),
])
def test_kernel_that_cannot_be_had_is_skip(tmp_path: Path, error: Untestable,
                                           reason: str) -> None:
    repro = reproducer.load(GRE)
    res = runner.run("git:abc", repro, tmp_path, kernels=Resolver(error))  # type: ignore[arg-type]
    assert res.verdict is Verdict.SKIP and reason in res.reason
    assert reason in (tmp_path / "untestable.txt").read_text()
    assert json.loads((tmp_path / "result.json").read_text())["verdict"] == "skip"


def test_missing_config_option_is_skip(tmp_path: Path) -> None:
    repro = reproducer.load(GRE)
    art = artifact(tmp_path, "CONFIG_NET_NS=y\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    res = runner.run("git:abc", repro, run_dir, kernels=Resolver(art))  # type: ignore[arg-type]
    assert res.verdict is Verdict.SKIP and "kernel config lacks CONFIG_VETH" in res.reason


def test_unknown_config_is_said_not_passed_silently(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "boot_and_test",
                        lambda *a: Outcome(Verdict.GOOD, "scripted"))
    res = runner.run("local:x", reproducer.load(GRE), tmp_path,
                     kernels=Resolver(artifact(tmp_path, None)))  # type: ignore[arg-type]
    assert res.verdict is Verdict.GOOD
    assert res.notes == ["kernel config unknown: required options not checked "
                         "(CONFIG_NET_NS, CONFIG_VETH, CONFIG_NET_IPGRE_DEMUX, "
                         "CONFIG_NET_IPGRE, CONFIG_PACKET)"]


def test_boot_failure_is_skip_and_infra_error_is_not(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    art = artifact(tmp_path, FULL)

    def panics(*a: object) -> Outcome:
        raise BootFailure("kernel crashed during boot: Kernel panic", tmp_path / "console.log")

    monkeypatch.setattr(runner, "boot_and_test", panics)
    res = runner.run("git:abc", reproducer.load(GRE), tmp_path,
                     kernels=Resolver(art))  # type: ignore[arg-type]
    assert res.verdict is Verdict.SKIP and "Kernel panic" in res.reason

    def qemu_missing(*a: object) -> Outcome:
        raise InfraError("qemu failed to start")

    monkeypatch.setattr(runner, "boot_and_test", qemu_missing)
    with pytest.raises(InfraError):
        runner.run("git:abc", reproducer.load(GRE), tmp_path,
                   kernels=Resolver(art))  # type: ignore[arg-type]
    assert json.loads((tmp_path / "result.json").read_text())["error"].startswith("InfraError")


def test_tester_turns_a_build_failure_into_a_skip_step(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("error: boom\n")
    stats = BuildStats(rev="abc", commit="abc", config_s=1.0, build_s=9.5)
    tester = KernelTester(reproducer.load(GRE), runner.RunOptions(),
                          Resolver(BuildFailure("git:abc does not build: boom", log),
                                   stats),  # type: ignore[arg-type]
                          say=lambda s: None)
    step = tester(Stage.GIT, "a" * 40, tmp_path)
    assert step.verdict is Verdict.SKIP and step.stage is Stage.GIT
    assert step.build_log == str(log) and step.build_s == 10.5 and not step.cached
    assert step.run_dir == str(tmp_path)


def test_a_killed_run_is_marked_by_the_next_one(tmp_path: Path) -> None:
    """kill -9 leaves run.pid behind; the next run dir made beside it reaps it."""
    import subprocess
    import sys

    from bisector.paths import RUN_PID, new_run_dir

    dead = tmp_path / "20260101-000000-old"
    dead.mkdir()
    child = subprocess.run([sys.executable, "-c", "import os, sys; sys.path.insert(0, '.');"
                            "from pathlib import Path; from bisector.paths import mark_running;"
                            f"mark_running(Path({str(dead)!r}))"], cwd=REPO, check=True)
    assert child.returncode == 0 and (dead / RUN_PID).exists()  # its process is gone now
    (dead / "overlay.qcow2").write_bytes(b"x")
    alive = tmp_path / "20260101-000001-alive"
    alive.mkdir()
    from bisector.paths import mark_running

    mark_running(alive)  # this process: still running
    new_run_dir("debian:x", "r", tmp_path)
    data = json.loads((dead / "result.json").read_text())
    assert data["status"] == "killed" and data["verdict"] is None
    assert not (dead / "overlay.qcow2").exists() and not (dead / RUN_PID).exists()
    assert (alive / RUN_PID).exists() and not (alive / "result.json").exists()


def test_a_released_kernel_that_cannot_be_downloaded_is_skip_in_a_list(tmp_path: Path
                                                                       ) -> None:
    from bisector.errors import DownloadError

    failing = Resolver(DownloadError("cannot fetch http://x/linux.deb: HTTP 503"))
    tester = KernelTester(reproducer.load(GRE), runner.RunOptions(), failing,  # type: ignore[arg-type]
                          say=lambda s: None)
    step = tester(Stage.LIST, "debian:6.1.0-54", tmp_path)
    assert step.verdict is Verdict.SKIP and "download failed" in step.reason
    with pytest.raises(DownloadError):  # a commit's build never downloads: stays an error
        tester(Stage.GIT, "a" * 40, tmp_path)


# ------------------------------------------------------------------ boots and iterations

class FakeBoots:
    """Stands in for runner.booted (the VM boundary): counts boots, may fail some."""

    def __init__(self, failures: dict[int, str]) -> None:
        self.failures, self.boots = failures, 0

    def __call__(self, *a: object, **k: object):  # type: ignore[no-untyped-def]
        from contextlib import contextmanager

        @contextmanager
        def cm():  # type: ignore[no-untyped-def]
            self.boots += 1
            if self.boots in self.failures:
                raise BootFailure(self.failures[self.boots])

            class B:
                boot_seconds = 1.0
                guest = vm = None
            yield B()
        return cm()


def scripted_iterations(monkeypatch: pytest.MonkeyPatch, plan: list[tuple[Verdict, bool]]
                        ) -> list[int]:
    """Each iteration's verdict and whether the guest died in it; returns boot numbers."""
    calls: list[int] = []

    def fake_test(guest, vm, repro, run_dir, say, decisions):  # type: ignore[no-untyped-def]
        rules = repro.spec.verdict
        while len(decisions) < rules.repeat:
            verdict, died = plan[len(decisions)]
            decisions.append(Outcome(verdict, "scripted"))
            calls.append(len(decisions))
            if died or rules.fresh_boot:
                return

    monkeypatch.setattr(runner, "_test", fake_test)
    return calls


def repeat_repro(tmp_path: Path, repeat: int, fresh: bool = False) -> reproducer.Reproducer:
    import yaml

    data = yaml.safe_load(GRE.read_text())
    data["verdict"].update(repeat=repeat, bad_threshold=1, fresh_boot=fresh)
    path = tmp_path / "gre-ecn-mac-corruption.yaml"
    path.write_text(yaml.safe_dump(data))
    return reproducer.load(path)


def run_boots(tmp_path: Path, repro: reproducer.Reproducer, boots: FakeBoots,
              monkeypatch: pytest.MonkeyPatch) -> Outcome:
    from bisector.runner import Timer, _boot_and_run
    from bisector.vm import Accel

    monkeypatch.setattr(runner, "booted", boots)
    res = runner.RunResult(kernel="k", reproducer="r", run_dir=str(tmp_path))
    return _boot_and_run(artifact(tmp_path, FULL), None, None, None, repro,  # type: ignore[arg-type]
                         tmp_path, runner.RunOptions(), Accel.TCG, Timer(res), lambda s: None)


def test_iterations_share_one_boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_iterations(monkeypatch, [(Verdict.GOOD, False)] * 3)
    boots = FakeBoots({})
    out = run_boots(tmp_path, repeat_repro(tmp_path, 3), boots, monkeypatch)
    assert out.verdict is Verdict.GOOD and len(out.iterations) == 3 and boots.boots == 1


def test_a_guest_that_died_is_booted_again_for_the_rest(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_iterations(monkeypatch, [(Verdict.GOOD, True), (Verdict.GOOD, False),
                                      (Verdict.GOOD, False)])
    boots = FakeBoots({})
    out = run_boots(tmp_path, repeat_repro(tmp_path, 3), boots, monkeypatch)
    assert len(out.iterations) == 3 and boots.boots == 2


def test_fresh_boot_per_iteration_when_asked(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_iterations(monkeypatch, [(Verdict.GOOD, False)] * 3)
    boots = FakeBoots({})
    run_boots(tmp_path, repeat_repro(tmp_path, 3, fresh=True), boots, monkeypatch)
    assert boots.boots == 3


def test_a_boot_crash_is_retried_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_iterations(monkeypatch, [(Verdict.BAD, False)])
    boots = FakeBoots({1: "kernel crashed during boot: int3 in sched_clock_cpu"})
    out = run_boots(tmp_path, repeat_repro(tmp_path, 1), boots, monkeypatch)
    assert out.verdict is Verdict.BAD and boots.boots == 2


def test_a_boot_that_crashes_twice_is_skip(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_iterations(monkeypatch, [(Verdict.BAD, False)])
    boots = FakeBoots({1: "kernel crashed during boot: oops", 2: "kernel crashed during boot: x"})
    with pytest.raises(BootFailure, match="boot failure: kernel crashed during boot: x"):
        run_boots(tmp_path, repeat_repro(tmp_path, 1), boots, monkeypatch)
    assert boots.boots == 2


def test_no_ssh_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_iterations(monkeypatch, [(Verdict.BAD, False)])
    boots = FakeBoots({1: "no SSH within 180s"})
    with pytest.raises(BootFailure):
        run_boots(tmp_path, repeat_repro(tmp_path, 1), boots, monkeypatch)
    assert boots.boots == 1
