"""Testing one bisection candidate for real: kernel spec or commit → :class:`Step`.

The campaign asks a :class:`StepTester` to test a candidate in a step
directory it made; unit tests pass a scripted one.  :class:`KernelTester`
resolves the kernel through the one resolver (a commit is built as
``git:<sha>`` with the reproducer's options), boots it and runs the
reproducer with :func:`bisector.runner.run` — which is where "cannot be
tested" (a build failure, a boot failure …) becomes SKIP — and adds what
the step cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import runner
from .errors import DownloadError
from .kernel.resolver import KernelResolver, is_prebuilt
from .outcomes import Stage, Step
from .progress import note
from .reproducer import Reproducer
from .verdict import Verdict


class StepTester(Protocol):
    def __call__(self, stage: Stage, candidate: str, step_dir: Path) -> Step:
        """Test ``candidate`` (a prebuilt kernel spec or a full commit sha); evidence
        goes into ``step_dir``.  Raises only for user and infrastructure errors."""
        ...


def spec_for(candidate: str) -> str:
    """A list candidate is already a kernel spec; a git candidate is a commit."""
    return candidate if is_prebuilt(candidate) else f"git:{candidate}"


@dataclass
class KernelTester:
    repro: Reproducer
    opts: runner.RunOptions
    kernels: KernelResolver
    say: Callable[[str], None] = note

    def __call__(self, stage: Stage, candidate: str, step_dir: Path) -> Step:
        spec = spec_for(candidate)
        try:
            res = runner.run(spec, self.repro, step_dir, self.opts, kernels=self.kernels,
                             on_phase=self.say)
        except DownloadError as exc:
            if not is_prebuilt(candidate):
                raise
            # one released kernel that cannot be fetched (after retries and mirrors: an
            # outage, a missing CHECKSUMS entry) is that kernel's SKIP, not the campaign's end
            self.say(f"{candidate}: {exc}")
            return Step(stage=stage, candidate=candidate, verdict=Verdict.SKIP,
                        reason=f"download failed: {exc}", run_dir=str(step_dir))
        assert res.verdict is not None
        stats = self.kernels.build_stats(spec)
        build_log = res.untestable_log
        if build_log is None and res.artifact_dir is not None and stats is not None:
            log = Path(res.artifact_dir) / "build.log"
            build_log = str(log) if log.exists() else None
        return Step(stage=stage, candidate=candidate, verdict=res.verdict, reason=res.reason,
                    build_s=round(stats.config_s + stats.build_s, 2) if stats else 0.0,
                    boot_s=res.phases.get("boot", 0.0), test_s=res.phases.get("test", 0.0),
                    cached=stats.cached if stats else False, run_dir=str(step_dir),
                    build_log=build_log)
