"""Reports: Markdown, HTML (jinja2, autoescaped) and JSON for a campaign.

What a kernel engineer pastes into a mail: the culprit with a ``Fixes:``
line and ``#regzbot introduced:`` (a fix: "fixed by" and the stable backport
line, see :mod:`bisector.summary`), the maintainers to Cc (from the tree's
``scripts/get_maintainer.pl`` when present), the replayable bisect log and a
per-step table with links to every console and build log.  A Bayesian search
adds its evidence: the top hypotheses (flake among them), every run that fed the
posterior, and a plot of the posterior mass over the range as the search went
(:mod:`bisector.plot`, inline in the HTML and ``posterior.svg`` beside it).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from . import flaky, plot, proc, summary
from .errors import BisectorError, UserError
from .git import git_bytes
from .outcomes import CampaignResult, PosteriorHistory, Stage, Step
from .reproducer import parse
from .store import Campaign

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"


def maintainers(tree: Path, sha: str) -> list[str]:
    """Whom to Cc for ``sha``: the tree's own get_maintainer.pl run on the commit's patch.

    The patch is piped in: given no patch file, get_maintainer.pl reads it from
    stdin (it takes no ``-``; it would die "file '-' not found").  It stays
    bytes from git to perl, so a patch that is not UTF-8 arrives unaltered.
    """
    script = tree / "scripts" / "get_maintainer.pl"
    if not script.exists():
        return []
    try:
        patch = git_bytes(tree, "format-patch", "-1", "--stdout", sha, timeout=120)
        out = proc.run(["perl", script, "--no-rolestats", "--no-git", "--no-git-fallback"],
                       cwd=tree, input=patch, timeout=300).stdout
    except proc.CommandError as exc:
        log.warning("get_maintainer.pl failed: %s", exc)
        return []
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md_escape(text: object) -> str:
    """Text that renders as itself in Markdown: one line, no live HTML, links or tables.

    Commit subjects, reproducer titles and step reasons come from strangers; a
    newline would break the steps table and ``<a href=javascript:…>`` would be
    live when the Markdown is rendered."""
    flat = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", flat)


def md_code(text: object) -> str:
    """Inline code that cannot be closed early (backticks inside become ')."""
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"


def posterior(campaign: Campaign, steps: list[Step], result: CampaignResult,
              trigger_rate: float | None) -> PosteriorHistory | None:
    """The Bayesian search's posterior history: as stored, or -- a result stored
    without it -- rebuilt from the steps (:func:`bisector.flaky.replay`), which needs
    the tree still there; None when there is none to show."""
    if result.strategy != "bayes":
        return None
    if result.posterior is not None:
        return result.posterior
    tree, rng = campaign.args.get("tree"), result.range
    if not tree or rng is None:
        return None
    try:
        history = flaky.replay(Path(tree), rng.old_shas, rng.new_sha, steps, trigger_rate,
                               result.find_fix)
    except (BisectorError, OSError) as exc:
        log.warning("could not rebuild the posterior history: %s", exc)
        return None
    return history if history.runs else None


def context(campaign: Campaign, steps: list[Step], result: CampaignResult) -> dict[str, Any]:
    trigger_rate: float | None = None
    try:
        spec, _ = parse(Path(campaign.args["repro"]))
        repro: dict[str, object] = {"name": spec.name, "title": spec.title,
                                    "network": spec.requires.network}
        trigger_rate = spec.verdict.trigger_rate
    except UserError:
        repro = {"name": Path(campaign.args["repro"]).stem, "title": "", "network": None}
    tree = campaign.args.get("tree")
    culprit = result.culprit
    maint = maintainers(Path(tree), culprit.sha) if culprit and tree else []
    real = [s for s in steps if not s.replayed]
    totals = {"builds": sum(1 for s in real if s.built),
              "cached": sum(1 for s in real if s.cached),
              "build": sum(s.build_s for s in real), "boot": sum(s.boot_s for s in real),
              "test": sum(s.test_s for s in real), "total": sum(s.total_s for s in real)}
    history = posterior(campaign, steps, result, trigger_rate)
    parallel = _parallel(result, real, tree)
    svg: Markup | None = plot.posterior_svg(history) if history is not None else None
    return {"campaign": campaign, "steps": steps, "r": result, "status": result.status.value,
            "terms": result.terms, "headline": summary.headline(result),
            "mail_lines": summary.mail_lines(result),
            "meaning": summary.upstream_range(result),
            "continue_cmd": summary.continue_command(result, str(campaign.args["repro"])),
            "maintainers": maint, "repro": repro, "totals": totals,
            "posterior": history, "posterior_svg": svg, "parallel": parallel}


def _parallel(result: CampaignResult, steps: list[Step], tree: str | None
              ) -> dict[str, int] | None:
    """What multisection bought and cost: rounds vs plain bisection's steps, and the
    git builds it made (k per round instead of one)."""
    if result.workers <= 1 or result.range is None or not tree:
        return None
    from . import git

    try:
        n = int(git.out(Path(tree), "rev-list", "--count", result.range.new_sha, "--not",
                        *result.range.old_shas))
    except (BisectorError, ValueError):
        return None
    return {"workers": result.workers, "rounds": result.rounds, "commits": n,
            "plain_steps": math.ceil(math.log2(n + 1)) if n else 0,
            "builds": sum(1 for s in steps if s.stage is Stage.GIT and s.built),
            "tested": sum(1 for s in steps if s.stage is Stage.GIT)}


def write(campaign: Campaign, steps: list[Step], result: CampaignResult,
          out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = context(campaign, steps, result)
    md_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                                keep_trailing_newline=True, trim_blocks=False)
    md_env.filters.update(md=md_escape, code=md_code, short=summary.short)
    html_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                  autoescape=jinja2.select_autoescape(["html", "j2"]))
    html_env.filters.update(short=summary.short)
    paths = {"md": out_dir / "report.md", "html": out_dir / "report.html",
             "json": out_dir / "report.json"}
    paths["md"].write_text(md_env.get_template("report.md.j2").render(**ctx))
    paths["html"].write_text(html_env.get_template("report.html.j2").render(**ctx))
    data = {"campaign": campaign.id, "status": result.status.value, "args": campaign.args,
            "result": result.model_dump(mode="json"), "headline": ctx["headline"],
            "mail_lines": ctx["mail_lines"], "maintainers": ctx["maintainers"],
            "totals": ctx["totals"],
            "steps": [{**asdict(s), "stage": s.stage.value, "verdict": s.verdict.value}
                      for s in steps]}
    if result.posterior is None and ctx["posterior"] is not None:  # rebuilt, not stored
        data["posterior"] = ctx["posterior"].model_dump(mode="json")
    paths["json"].write_text(json.dumps(data, indent=2, default=str))
    if result.bisect_log:
        (out_dir / "bisect.log").write_text(result.bisect_log)
    if ctx["posterior_svg"] is not None:
        paths["svg"] = out_dir / "posterior.svg"
        paths["svg"].write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n{ctx["posterior_svg"]}\n')
    return paths
