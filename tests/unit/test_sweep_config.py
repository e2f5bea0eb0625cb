"""Kernel sets resolved afresh (each kind against a local stand-in of its source),
kernels fetched once per sweep, regressions turned into campaigns, retention."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from bisector.sweep import autobisect, config, maintenance
from bisector.sweep.cells import CellRunner
from bisector.sweep.model import (
    CellKey,
    DebianSet,
    GitSet,
    KernelRef,
    LocalSet,
    Regression,
    RegressionStatus,
    SweepConfig,
    UbuntuSet,
)
from tests.fakes.archive import build_deb, fake_kernel, serve
from tests.fakes.gitrepo import commit_files, git, linear_repo
from tests.fakes.kernel_archives import debian_kernels, mainline_kernels

REPO = Path(__file__).resolve().parents[2]
GATE = REPO / "tests" / "data" / "reproducers" / "kernel-abi-gate.yaml"


def test_debian_set_is_the_newest_n_of_its_series(tmp_path: Path, tmp_cache: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = debian_kernels(tmp_path / "archive", tmp_path / "work",
                          {53: "6.1.187-1", 54: "6.1.190-1", 56: "6.1.192-1"}, b"")
    with serve(root) as url:
        monkeypatch.setenv("BISECTOR_DEBIAN_ARCHIVES", f"{url}=bookworm")
        monkeypatch.setenv("BISECTOR_DEBIAN_KEYRING", "none")
        refs = config.debian_kernels("d", DebianSet(series="6.1", newest=2))
    assert [(r.spec, r.order, r.upstream) for r in refs] == [
        ("debian:6.1.0-54", 0, "v6.1.190"), ("debian:6.1.0-56", 1, "v6.1.192")]


def test_ubuntu_set_is_the_newest_n_usable_releases(tmp_path: Path, tmp_cache: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = mainline_kernels(tmp_path / "mainline", ["v5.7", "v5.8-rc1", "v5.8", "v5.8.1",
                                                    "v5.9-rc2"], b"", failed=["v5.8.1"])
    with serve(root) as url:
        monkeypatch.setenv("BISECTOR_UBUNTU_MAINLINE_URL", url)
        stable = config.ubuntu_kernels("u", UbuntuSet(newest=2))
        rcs = config.ubuntu_kernels("u", UbuntuSet(newest=1, rc=True))
    assert [r.spec for r in stable] == ["ubuntu-mainline:v5.7", "ubuntu-mainline:v5.8"]
    assert [r.spec for r in rcs] == ["ubuntu-mainline:v5.9-rc2"]


def test_git_set_is_each_branch_tip_after_a_fetch(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    linear_repo(upstream, 2)
    git(upstream, "branch", "next")
    tree = tmp_path / "tree"
    subprocess.run(["git", "clone", "-q", str(upstream), str(tree)], check=True)
    new = commit_files(upstream, "moves main", {"f.c": "int f;\n"})
    lines = config.git_kernels("net", GitSet(tree=str(tree), branches=["main", "next"],
                                             fetch=True), tree)
    assert sorted(lines) == ["net/main", "net/next"]
    assert lines["net/main"][0].spec == f"git:{new}"  # the tip after tonight's fetch
    assert lines["net/next"][0].spec == f"git:{git(upstream, 'rev-parse', 'next')}"


def test_local_set_orders_debs_by_version(tmp_path: Path) -> None:
    for name, ver in (("linux-image-6.1.10", "6.1.10-1"), ("linux-image-6.1.9", "6.1.9-1"),
                      ("linux-image-6.1.11", "6.1.11-1")):
        build_deb(tmp_path / "debs" / f"{name}_{ver}_amd64.deb", name, ver,
                  {"boot/vmlinuz": fake_kernel(b"x")})
    refs = config.local_kernels("mine", LocalSet(dir="debs", newest=2), tmp_path)
    assert [r.label for r in refs] == ["6.1.10 6.1.10-1", "6.1.11 6.1.11-1"]


def test_a_kernel_is_resolved_once_however_many_reproducers(tmp_path: Path) -> None:
    resolved: list[str] = []

    class Resolver:
        def resolve(self, spec: str) -> object:
            resolved.append(spec)
            return object()

    cells = CellRunner(tmp_path, None, resolver_for=lambda k: Resolver())  # type: ignore[arg-type,return-value]
    ref = KernelRef(line="d", spec="debian:6.1.0-57", label="57", order=0)
    for _ in range(3):
        assert cells.kernel(ref).artifact is not None
    assert resolved == ["debian:6.1.0-57"]


def _plan(tmp_path: Path, **cfg: object) -> config.Plan:
    from bisector import reproducer

    c = SweepConfig.model_validate({"kernels": {"d": {"debian": {"series": "6.1"}}},
                                    "reproducers": [{"glob": str(GATE)}], **cfg})
    return config.Plan(name="n", config_path=tmp_path / "s.yaml", config=c,
                       results_dir=tmp_path / "r", kernels=[],
                       reproducers={("kernel-abi-gate", "default"): reproducer.load(GATE)},
                       trees={"net/main": tmp_path / "tree"})


def _reg(good: str, bad: str, line: str = "d") -> Regression:
    return Regression(id=1, line=line, reproducer="kernel-abi-gate", params="default",
                      last_good=good, first_bad=bad, since="2026-12-01",
                      status=RegressionStatus.NOT_BISECTED)


@pytest.mark.parametrize("line, good, bad, cfg, want", [
    ("net/main", "git:" + "a" * 40, "git:" + "b" * 40, {},
     dict(good=["a" * 40], bad=["b" * 40], tree="TREE", strategy="auto")),
    ("d", "debian:6.1.0-56", "debian:6.1.0-57", {},
     dict(good=["debian:6.1.0-56"], bad=["debian:6.1.0-57"], tree=None)),
    ("d", "debian:6.1.0-56", "debian:6.1.0-57", {"bisect": {"tree": "/src/linux"}},
     dict(tree="/src/linux")),  # two-stage: list, then git between the upstream tags
])
def test_a_regression_becomes_the_ordinary_campaign(tmp_path: Path, line: str, good: str,
                                                    bad: str, cfg: dict[str, object],
                                                    want: dict[str, object]) -> None:
    args = autobisect.bisect_args(_plan(tmp_path, **cfg), _reg(good, bad, line), None,
                                  tmp_path / "rep")
    assert args is not None
    for k, v in want.items():
        assert getattr(args, k) == (str(tmp_path / "tree") if v == "TREE" else v), k


def test_a_measured_flake_rate_feeds_the_bayesian_search(tmp_path: Path) -> None:
    args = autobisect.bisect_args(_plan(tmp_path), _reg("debian:6.1.0-56", "debian:6.1.0-57"),
                                  0.4, tmp_path / "rep")
    assert args is not None and args.strategy == "bayes" and args.trigger_rate == 0.6


def test_local_kernels_are_not_bisected_but_say_why(tmp_path: Path) -> None:
    reg = _reg("local:/d/a.deb", "local:/d/b.deb")
    assert autobisect.bisect_args(_plan(tmp_path), reg, None, tmp_path / "r") is None
    assert "local folder" in reg.note


def test_retention_keeps_the_newest_and_the_protected(tmp_path: Path, tmp_cache: Path) -> None:
    old = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 30 * 86400))
    sweeps = []
    for sid in (5, 4, 3, 2, 1):  # newest first
        d = tmp_path / f"sweep-{sid}"
        (d / "cells").mkdir(parents=True)
        (d / "index.html").write_text("page")
        sweeps.append((sid, old, d))
    pruned = maintenance.prune(tmp_path, sweeps, protected={2}, days=14, keep_sweeps=2,
                               kernel_days=30)
    assert sorted(p.name for p in pruned.sweep_dirs) == ["sweep-1", "sweep-3"]
    assert (tmp_path / "sweep-2" / "cells").is_dir()      # an open regression's evidence
    assert (tmp_path / "sweep-4" / "cells").is_dir()      # among the newest 2
    assert not (tmp_path / "sweep-1" / "cells").exists()
    assert (tmp_path / "sweep-1" / "index.html").is_file()  # the report stays


def test_a_cell_key_is_stable(tmp_path: Path) -> None:
    k = CellKey(line="d", kernel="debian:6.1.0-57", reproducer="r")
    assert k.id == CellKey(line="d", kernel="debian:6.1.0-57", reproducer="r").id
    assert k.id != CellKey(line="d", kernel="debian:6.1.0-57", reproducer="r", params="x").id
    assert os.sep not in k.id
