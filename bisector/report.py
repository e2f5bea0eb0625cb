"""Reports: Markdown, HTML (jinja2, autoescaped) and JSON for a campaign.

What a kernel engineer pastes into a mail: the culprit with a ``Fixes:``
line and ``#regzbot introduced:``, the maintainers to Cc (from the tree's
``scripts/get_maintainer.pl`` when present), the replayable bisect log and a
per-step table with links to every console and build log.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import jinja2

from . import proc
from .reproducer import parse
from .store import Campaign, StepRow

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"


def maintainers(tree: Path, sha: str) -> list[str]:
    script = tree / "scripts" / "get_maintainer.pl"
    if not script.exists():
        return []
    try:
        patch = proc.run(["git", "-C", tree, "format-patch", "-1", "--stdout", sha],
                         timeout=120).stdout
        with tempfile.NamedTemporaryFile("w", suffix=".patch") as fh:
            fh.write(patch)
            fh.flush()
            out = proc.run(["perl", script, "--no-rolestats", "--no-git", "--no-git-fallback",
                            fh.name], cwd=tree, timeout=300).stdout
    except proc.CommandError as exc:
        log.warning("get_maintainer.pl failed: %s", exc)
        return []
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


def context(campaign: Campaign, steps: list[StepRow], status: str,
            result: dict[str, Any]) -> dict[str, Any]:
    try:
        spec, _ = parse(Path(campaign.args["repro"]))
        repro = {"name": spec.name, "title": spec.title}
    except Exception:
        repro = {"name": Path(campaign.args["repro"]).stem, "title": ""}
    list_result = next((s for s in result.get("stages", []) if s.get("stage") == "list"), None)
    culprit = result.get("culprit")
    tree = campaign.args.get("tree")
    maint = maintainers(Path(tree), culprit["sha"]) if culprit and tree else []
    real = [s for s in steps if not s.replayed]
    totals = {"builds": sum(1 for s in real if s.stage != "list" and s.build_s > 0
                            and not s.cached),
              "cached": sum(1 for s in real if s.cached),
              "build": sum(s.build_s for s in real), "boot": sum(s.boot_s for s in real),
              "test": sum(s.test_s for s in real), "total": sum(s.total_s for s in real)}
    return {"campaign": campaign, "steps": steps, "status": status, "culprit": culprit,
            "candidates": result.get("candidates"), "mismatch": result.get("mismatch"),
            "upstream": result.get("upstream"), "list_result": list_result,
            "terms": _Terms(**result.get("terms", {"old": "good", "new": "bad",
                                                    "find_fix": False})),
            "bisect_log": result.get("bisect_log", ""), "maintainers": maint,
            "repro": repro, "totals": totals}


class _Terms:
    def __init__(self, old: str, new: str, find_fix: bool) -> None:
        self.old, self.new, self.find_fix = old, new, find_fix


def write(campaign: Campaign, steps: list[StepRow], status: str, result: dict[str, Any],
          out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = context(campaign, steps, status, result)
    md_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                                keep_trailing_newline=True, trim_blocks=False)
    html_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                  autoescape=jinja2.select_autoescape(["html", "j2"]))
    paths = {"md": out_dir / "report.md", "html": out_dir / "report.html",
             "json": out_dir / "report.json"}
    paths["md"].write_text(md_env.get_template("report.md.j2").render(**ctx))
    paths["html"].write_text(html_env.get_template("report.html.j2").render(**ctx))
    data = {"campaign": campaign.id, "status": status, "args": campaign.args,
            "result": result, "maintainers": ctx["maintainers"], "totals": ctx["totals"],
            "steps": [s.__dict__ for s in steps]}
    paths["json"].write_text(json.dumps(data, indent=2, default=str))
    if result.get("bisect_log"):
        (out_dir / "bisect.log").write_text(result["bisect_log"])
    return paths
