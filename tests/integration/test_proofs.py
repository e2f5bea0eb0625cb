"""Seeds 000-003 proven on real builds: BAD with the fix reverted, GOOD without.

Slow (kernel builds + several TCG boots each): `make test-all` or
`pytest -m slow`.  Runs per kernel: BISECTOR_PROOF_RUNS (default 1; the
README table was made with 3).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bisector import demo, reproducer, runner
from bisector.prove import prove

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SEEDS = ["gre-ecn-mac-corruption", "gro-inner-transport-header", "rp-filter-local-route",
         "ipvs-gue-inner-mac"]


@pytest.fixture(scope="module")
def tree() -> Path:
    meta = demo.create(Path(os.environ.get("BISECTOR_DEMO_DIR",
                                           Path.home() / ".cache" / "bisector" / "demo")))
    return Path(str(meta["tree"]))


@pytest.mark.parametrize("name", SEEDS)
def test_seed_proof(name: str, tree: Path, tmp_path: Path) -> None:
    repro = reproducer.load(REPO / "reproducers" / f"{name}.yaml")
    patch = REPO / "kernels" / "patches" / f"{name}.patch"
    runs = int(os.environ.get("BISECTOR_PROOF_RUNS", "1"))
    proof, out = prove(repro, "git:v6.1.192", f"git:v6.1.192+{patch}", runs=runs, tree=tree,
                       fragments=[REPO / "kernels" / "seeds.config"],
                       opts=runner.RunOptions(accel="tcg"), parent=tmp_path)
    assert proof.passed, f"{proof.line()} — reasons: bad {proof.bad.reasons}, " \
                         f"good {proof.good.reasons} (evidence {out})"
