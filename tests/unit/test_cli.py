from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bisector.cli import main

REPO = Path(__file__).resolve().parents[2]
GRE = REPO / "reproducers" / "gre-ecn-mac-corruption.yaml"


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["repro", "validate", str(GRE)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_validate_rejects_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    data = yaml.safe_load(GRE.read_text())
    data["verdict"]["repat"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["repro", "validate", str(GRE), str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: unknown key 'verdict.repat'"]


def test_run_user_errors_exit_above_128(tmp_path: Path, tmp_cache: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # a bisect-run script must never exit 1..127 for a broken setup
    assert main(["run", "--kernel", "nosuch:1", "--repro", str(GRE)]) == 129
    assert "unknown source 'nosuch'" in capsys.readouterr().err
    assert main(["run", "--kernel", "debian:6.1.0-56", "--repro",
                 str(tmp_path / "missing.yaml")]) == 129
    assert main(["run", "--kernel", "debian:6.1.0-56", "--repro", str(GRE),
                 "--param", "nope=1"]) == 129


def test_other_commands_exit_2_on_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kernels", "list", "fedora"]) == 2
    assert "unknown kernel source" in capsys.readouterr().err
