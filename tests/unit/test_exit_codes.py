"""The exit-code contract: under `git bisect run`, only a verdict may exit 1..127.

`bisector run` exits 0 GOOD, 1 BAD, 125 SKIP and >= 128 for everything else
(129 user error, usage included; 131 infrastructure or a bug); other commands
2 for user errors (usage included) and 3 for infrastructure or a bug.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bisector import cli
from tests.fakes.gitrepo import git, linear_repo

REPO = Path(__file__).resolve().parents[2]
GRE = REPO / "reproducers" / "gre-ecn-mac-corruption.yaml"


@pytest.mark.parametrize(("argv", "code"), [
    (["run", "--kernel", "debian:6.1.0-56"], 129),  # --repro missing
    (["run", "--kernel", "debian:6.1.0-56", "--repro", str(GRE), "--cpus", "many"], 129),
    (["-v", "run", "--nosuch"], 129),
    (["bisect", "--repro", str(GRE)], 2),
    (["kernels", "nosuch"], 2),
    (["frobnicate"], 2),
])
def test_usage_errors_are_user_errors(argv: list[str], code: int,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bisector: error: ")


@pytest.mark.parametrize(("command", "code"), [("run", 131), ("validate", 3)])
def test_a_bug_is_never_a_verdict(command: str, code: int, tmp_path: Path, tmp_cache: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr("bisector.reproducer.load", boom)
    argv = (["run", "--kernel", "debian:6.1.0-56", "--repro", str(GRE)] if command == "run"
            else ["repro", "validate", str(GRE)])
    assert cli.main(argv) == code
    err = capsys.readouterr().err.strip()
    assert "internal error: RuntimeError: simulated bug" in err
    trace = Path(err.rsplit("traceback: ", 1)[1])
    assert trace.is_file() and "simulated bug" in trace.read_text()
    assert trace.is_relative_to(tmp_path / "runs")


def test_non_utf8_reproducer_is_a_user_error(tmp_path: Path, tmp_cache: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(GRE.read_bytes().replace(b"title:", b"title: \xff", 1))
    assert cli.main(["run", "--kernel", "debian:6.1.0-56", "--repro", str(bad)]) == 129
    assert f"{bad}: not UTF-8" in capsys.readouterr().err


def test_git_bisect_run_aborts_on_a_broken_reproducer(tmp_path: Path, tmp_cache: Path) -> None:
    """End to end: git must stop, not print '... is the first bad commit'."""
    repo = tmp_path / "linux"
    shas = linear_repo(repo, 6)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(GRE.read_bytes().replace(b"title:", b"title: \xff", 1))
    git(repo, "bisect", "start", shas[-1], shas[0])
    env = {**os.environ, "BISECTOR_CACHE": str(tmp_cache), "BISECTOR_RUNS": str(tmp_path)}
    r = subprocess.run(["git", "-C", str(repo), "bisect", "run", sys.executable, "-m",
                        "bisector.cli", "run", "--kernel", "debian:6.1.0-56", "--repro",
                        str(bad)], capture_output=True, text=True, env=env, timeout=120,
                       check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "first bad commit" not in out
    assert "is < 0 or >= 128" in out and "bisect run failed" in out


@pytest.mark.parametrize(("argv", "fragment"), [
    (["run", "--kernel", "x:1", "--repro", str(GRE), "--boot-timeout", "-5"], "--boot-timeout"),
    (["run", "--kernel", "x:1", "--repro", str(GRE), "--boot-timeout", "nan"], "--boot-timeout"),
    (["run", "--kernel", "x:1", "--repro", str(GRE), "--memory", "0"], "--memory"),
    (["bisect", "--repro", str(GRE), "--good", "a", "--bad", "b", "--term-old", "x y"],
     "--term-old"),
    (["bisect", "--repro", str(GRE), "--good", "a", "--bad", "b", "--term-new", "reset"],
     "--term-new"),
    (["bisect", "--repro", str(GRE), "--good", "a", "--bad", "b", "--confidence", "1.5"],
     "--confidence"),
    (["bisect", "--repro", str(GRE), "--good", "a", "--bad", "b", "--max-runs", "0"],
     "--max-runs"),
    (["bisect", "--repro", str(GRE), "--good", "a", "--bad", "b", "--strategy", "magic"],
     "--strategy"),
    (["cache", "prune", "--older-than", "-3d"], "--older-than"),
])
def test_bad_option_values_are_refused_up_front(argv: list[str], fragment: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == (129 if argv[0] == "run" else 2)
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize(("old", "new"), [("bad", "fixed"), ("same", "same"), ("x", "good")])
def test_terms_git_would_refuse_are_user_errors(tmp_path: Path, tmp_cache: Path, old: str,
                                                new: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    linear_repo(tmp_path / "linux", 3)
    argv = ["bisect", "--repro", str(GRE), "--tree", str(tmp_path / "linux"), "--good", "v0",
            "--bad", "main", "--term-old", old, "--term-new", new]
    assert cli.main(argv) == 2
    assert "bisect terms" in capsys.readouterr().err
