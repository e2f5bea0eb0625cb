"""Each new regression of a sweep bisected on its own, with the ordinary campaign.

The endpoints come from the track's evidence: the newest GOOD kernel of the
line (tonight's, else the previous night's) and the oldest BAD kernel after
it.  A branch of a tree is a git bisection between the two tips; prebuilt
kernels are a list bisection over their source (two-stage, into git, when the
config gives ``bisect.tree``).  The campaign is resumable and writes its usual
report; the regression row keeps its id, so a regression is bisected once.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from pathlib import Path

from .. import report
from ..campaign import BisectArgs, run_campaign
from ..errors import BisectorError, UserError
from ..outcomes import CampaignResult, CampaignStatus
from ..search import Handler
from ..store import Store
from .config import Plan, overrides_of
from .model import CellResult, CellStatus, Change, Regression, RegressionStatus

log = logging.getLogger(__name__)


def endpoints(change: Change, tonight: Sequence[CellResult]) -> tuple[str, str]:
    """(last good, first bad) kernel specs of a new regression."""
    cells = sorted((c for c in tonight if c.key.line == change.line
                    and c.key.reproducer == change.reproducer and c.key.params == change.params),
                   key=lambda c: c.kernel_order)
    goods = [c for c in cells if c.status is CellStatus.GOOD]
    last_good = goods[-1].key.kernel if goods else (change.previous_kernel or "")
    after = [c for c in cells if c.status is CellStatus.BAD
             and (not goods or c.kernel_order > goods[-1].kernel_order)]
    first_bad = after[0].key.kernel if after else change.kernel
    return last_good, first_bad


def reproduce_command(plan: Plan, reg: Regression) -> str:
    repro = plan.reproducers[(reg.reproducer, reg.params)]
    argv = ["bisector", "run", "--kernel", reg.first_bad, "--repro", str(repro.path)]
    if reg.first_bad.startswith("git:") and plan.trees.get(reg.line):
        argv += ["--tree", str(plan.trees[reg.line])]
    for k, v in sorted(_overrides(plan, reg).items()):
        argv += ["--param", f"{k}={v}"]
    return shlex.join(argv)


def _overrides(plan: Plan, reg: Regression) -> dict[str, str]:
    return overrides_of(plan, reg.reproducer, reg.params)


def bisect_args(plan: Plan, reg: Regression, flake_rate: float | None,
                report_dir: Path) -> BisectArgs | None:
    """The campaign for a regression, or None (with ``reg.note`` set) when the config
    does not give what it needs."""
    cfg = plan.config
    repro = plan.reproducers[(reg.reproducer, reg.params)]
    common = dict(repro=str(repro.path), params=_overrides(plan, reg),
                  accel=cfg.run.accel, boot_timeout=cfg.run.boot_timeout,
                  memory_mb=cfg.run.memory, cpus=cfg.run.cpus, report_dir=str(report_dir),
                  verify_culprit=cfg.bisect.verify_culprit,
                  strategy=("bayes" if flake_rate and cfg.bisect.strategy == "auto"
                            else cfg.bisect.strategy),
                  max_builds=cfg.bisect.max_builds, trigger_rate=(
                      round(1 - flake_rate, 3) if flake_rate else None))
    if reg.first_bad.startswith("git:"):
        tree = plan.trees.get(reg.line)
        if tree is None or not reg.last_good.startswith("git:"):
            reg.note = "no good tip of this branch to bisect from"
            return None
        return BisectArgs(good=[reg.last_good[4:]], bad=[reg.first_bad[4:]], tree=str(tree),
                          fragments=[str(f) for f in plan.fragments.get(reg.line, [])],
                          **common)  # type: ignore[arg-type]
    if reg.first_bad.startswith("local:"):
        reg.note = ("kernels from a local folder: the last good and first bad ones are the "
                    "answer (no list to walk between them)")
        return None
    return BisectArgs(good=[reg.last_good], bad=[reg.first_bad], tree=cfg.bisect.tree,
                      **common)  # type: ignore[arg-type]


def bisect(plan: Plan, reg: Regression, flake_rate: float | None, handler: Handler,
           report_dir: Path, store: Store | None = None) -> Regression:
    """Run the campaign and put its answer into the regression."""
    args = bisect_args(plan, reg, flake_rate, report_dir)
    if args is None:
        return reg.model_copy(update={"status": RegressionStatus.NOT_BISECTED})
    st = store or Store()
    try:
        cr = run_campaign(args, handler, st)
    except UserError as exc:
        return reg.model_copy(update={"status": RegressionStatus.NOT_BISECTED,
                                      "note": f"cannot bisect: {exc}"})
    except BisectorError as exc:  # infrastructure: the campaign stays resumable
        return reg.model_copy(update={"status": RegressionStatus.BISECTING,
                                      "note": f"bisection interrupted ({exc}); "
                                              "`bisector resume` continues it"})
    return answer(reg, cr, st, report_dir)


def answer(reg: Regression, cr: CampaignResult, st: Store, report_dir: Path) -> Regression:
    c = st.get(cr.campaign_id)
    assert c is not None
    out = report.write(c, st.steps(c.id), cr, report_dir)
    upd: dict[str, object] = {"campaign_id": cr.campaign_id, "campaign_report": str(
        out.get("html", out["md"]))}
    if cr.status is CampaignStatus.FOUND:
        upd["status"] = RegressionStatus.FOUND
        if cr.culprit is not None:
            upd["culprit"], upd["culprit_subject"] = cr.culprit.sha, cr.culprit.subject
        else:
            upd["culprit"] = cr.first_kernel
            upd["note"] = (f"first bad kernel {cr.first_kernel}, last good "
                           f"{cr.last_old_kernel}")
    elif cr.status is CampaignStatus.DOUBTFUL:
        upd["status"] = RegressionStatus.DOUBTFUL
        upd["culprit"] = cr.culprit.sha if cr.culprit else None
        upd["culprit_subject"] = cr.culprit.subject if cr.culprit else None
        upd["note"] = f"doubtful: {cr.reason}"
    else:
        upd["status"] = RegressionStatus.FAILED
        upd["note"] = f"{cr.status.value}: {cr.reason}"[:500]
    return reg.model_copy(update=upd)
