"""``bisector repro prove``: show a reproducer tells a buggy kernel from a fixed one.

Runs the reproducer ``runs`` times (each a fresh boot) on the kernel that
should be BAD and on the one that should be GOOD and passes only if every run
agreed.  Anyone adding a reproducer proves it the same way; the shipped ones'
results are tabulated in ``reproducers/README.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import kernel as kernels
from . import runner
from .kernel.base import KernelArtifact
from .kernel.gitbuild import BuildFailure, GitBuildSource
from .paths import new_run_dir
from .reproducer import Loaded
from .verdict import Verdict


@dataclass
class Side:
    kernel: str
    expected: str
    verdicts: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)
    release: str = ""

    @property
    def agreed(self) -> int:
        return sum(v == self.expected for v in self.verdicts)


@dataclass
class Proof:
    reproducer: str
    bad: Side
    good: Side
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(s.verdicts and s.agreed == len(s.verdicts) for s in (self.bad, self.good))

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        return (f"{status} {self.reproducer}: BAD on {self.bad.kernel} "
                f"{self.bad.agreed}/{len(self.bad.verdicts)}, GOOD on {self.good.kernel} "
                f"{self.good.agreed}/{len(self.good.verdicts)}")


def _artifact(spec: str, repro: Loaded, tree: Path | None,
              fragments: list[Path]) -> KernelArtifact | str:
    """The kernel, or the reason it cannot be had (a build failure)."""
    if spec.startswith("git:"):
        if tree is None:
            from .errors import UserError

            raise UserError(f"{spec}: git kernels need --tree PATH")
        src = GitBuildSource(tree, required=repro.spec.requires.config, fragments=fragments)
        try:
            return src.resolve(spec[4:])
        except BuildFailure as exc:
            return f"build failed: {exc} (log {exc.log_path})"
    return kernels.resolve(spec)


def prove(repro: Loaded, good: str, bad: str, *, runs: int = 3, tree: Path | None = None,
          fragments: list[Path] | None = None, opts: runner.RunOptions | None = None,
          parent: Path | None = None,
          say: Callable[[str], None] | None = None) -> tuple[Proof, Path]:
    t0 = time.monotonic()
    out_dir = new_run_dir("prove", repro.spec.name, parent)
    proof = Proof(repro.spec.name, Side(bad, Verdict.BAD.value), Side(good, Verdict.GOOD.value))
    for side in (proof.bad, proof.good):
        art = _artifact(side.kernel, repro, tree, fragments or [])
        if isinstance(art, str):
            side.verdicts = [Verdict.SKIP.value] * runs
            side.reasons = [art] * runs
            continue
        side.release = art.release
        for i in range(runs):
            run_dir = out_dir / f"{side.expected}-{i + 1}"
            run_dir.mkdir()
            res = runner.run(side.kernel, repro, run_dir, opts, artifact=art, on_phase=say)
            assert res.verdict is not None
            side.verdicts.append(res.verdict.value)
            side.reasons.append(res.reason)
            side.run_dirs.append(str(run_dir))
            if say:
                say(f"{side.kernel} run {i + 1}/{runs}: {res.verdict.name} ({res.reason})")
    proof.seconds = round(time.monotonic() - t0, 1)
    data = asdict(proof)
    data["passed"] = proof.passed
    data["line"] = proof.line()
    (out_dir / "proof.json").write_text(json.dumps(data, indent=2))
    return proof, out_dir
