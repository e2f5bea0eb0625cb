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

from . import runner
from .errors import Untestable
from .kernel.resolver import KernelResolver
from .paths import new_run_dir
from .reproducer import Reproducer
from .verdict import Verdict


@dataclass
class ProofRuns:
    """The runs of one kernel in a proof: what was expected and what each boot said."""

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
    bad: ProofRuns
    good: ProofRuns
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(s.verdicts and s.agreed == len(s.verdicts) for s in (self.bad, self.good))

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        return (f"{status} {self.reproducer}: BAD on {self.bad.kernel} "
                f"{self.bad.agreed}/{len(self.bad.verdicts)}, GOOD on {self.good.kernel} "
                f"{self.good.agreed}/{len(self.good.verdicts)}")


def prove(repro: Reproducer, good: str, bad: str, *, runs: int = 3, tree: Path | None = None,
          fragments: list[Path] | None = None, opts: runner.RunOptions | None = None,
          parent: Path | None = None,
          say: Callable[[str], None] | None = None) -> tuple[Proof, Path]:
    t0 = time.monotonic()
    out_dir = new_run_dir("prove", repro.spec.name, parent)
    proof = Proof(repro.spec.name, ProofRuns(bad, Verdict.BAD.value),
                  ProofRuns(good, Verdict.GOOD.value))
    kernels = KernelResolver(tree, required=repro.spec.requires.config,
                             fragments=fragments or [])
    for side in (proof.bad, proof.good):
        try:
            art = kernels.resolve(side.kernel)  # once: every run boots the same artifact
        except Untestable as exc:
            side.verdicts = [Verdict.SKIP.value] * runs
            side.reasons = [f"cannot be tested: {exc}"] * runs
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
