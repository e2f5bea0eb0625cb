"""The sweep's report site: an HTML page per sweep, an index of sweeps, Markdown, JSON, JUnit.

Who reads what:

* people open ``<results>/index.html`` (every sweep, newest first) and a
  sweep's ``index.html`` (the kernels × reproducers matrix, the new
  regressions on top, the night-to-night comparison, history and timings);
* mail and the CLI take ``report.md``; the index (and later tools) read
  ``report.json`` back; CI systems (Jenkins, GitLab) read ``junit.xml``.

Every link is relative to the page holding it, so the results directory can
be moved, copied to a web server or opened with ``file://`` alike.  Every
string that came from a reproducer, a console or a kernel archive is escaped:
jinja2 autoescape for HTML, :mod:`xml.etree.ElementTree` for XML.  Every file
is written with :func:`bisector.paths.write_atomic`, so a reader (a web
server, the index of the next sweep) never sees half a file.

The templates get small frozen view objects built here rather than the raw
report, so the decisions (which cell is a new regression, where a link
points, what "doubtful" means in words) are made once, in typed code, for the
HTML page and the Markdown alike.
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import pydantic
from markupsafe import Markup

from .. import report as campaign_report
from ..paths import write_atomic
from ..summary import short
from .model import (
    Category,
    CellResult,
    CellStatus,
    Change,
    HistoryMark,
    KernelRef,
    Regression,
    RegressionStatus,
    SweepReport,
)
from .svg import timing_svg, xml_safe

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

#: the directories of a results dir that hold one sweep each
SWEEP_DIR = re.compile(r"^sweep-(\d+)$")

#: what a verdict is called on the page (INFRA is not the kernel's result: "no result")
VERDICT = {CellStatus.GOOD: "good", CellStatus.BAD: "bad", CellStatus.SKIP: "skip",
           CellStatus.INFRA: "no result", CellStatus.PENDING: "pending"}

LEGEND = (
    ("v-good", "good", "the reproducer passed on this kernel"),
    ("v-bad", "bad", "the reproducer failed: the bug is there"),
    ("v-skip", "skip", "the kernel could not be tested (build/boot failure, unrelated crash)"),
    ("v-infra", "no result", "the infrastructure failed on every attempt"),
    ("v-pending", "pending", "not run yet"),
)

#: evidence files linked from a cell when its run directory has them
EVIDENCE = (("console", "console.log"), ("result", "result.json"))


@dataclass(frozen=True)
class SitePaths:
    """What :func:`write_site` wrote (absolute paths), for the caller to log or mail."""

    page: Path        # <sweep_dir>/index.html
    markdown: Path    # <sweep_dir>/report.md
    json: Path        # <sweep_dir>/report.json
    junit: Path       # <sweep_dir>/junit.xml
    index: Path       # <results_dir>/index.html
    latest: Path      # <results_dir>/latest.html

    def all(self) -> list[Path]:
        return [self.page, self.markdown, self.json, self.junit, self.index, self.latest]


# ------------------------------------------------------------------ views


@dataclass(frozen=True)
class Link:
    label: str
    href: str


@dataclass(frozen=True)
class CellView:
    """One matrix cell as shown: its colour class, words, evidence links, and whether
    it is tonight's new regression."""

    cell: CellResult
    css: str
    verdict: str
    detail: str
    anchor: str
    links: tuple[Link, ...]
    regression: bool


@dataclass(frozen=True)
class LineGroup:
    line: str
    kernels: tuple[KernelRef, ...]


@dataclass(frozen=True)
class MatrixRow:
    reproducer: str
    params: str
    cells: tuple[CellView | None, ...]


@dataclass(frozen=True)
class Mark:
    """One night in a history strip (a link to that night's page when it still exists)."""

    css: str
    title: str
    href: str | None


@dataclass(frozen=True)
class TrackHistory:
    label: str
    anchor: str | None
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class RegressionView:
    r: Regression
    outcome: str            # what the bisection found, in words
    doubtful: bool
    campaign_href: str | None
    anchor: str | None


@dataclass(frozen=True)
class ChangeView:
    c: Change
    anchor: str | None
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class CategoryGroup:
    category: Category
    slug: str
    changes: tuple[ChangeView, ...]


@dataclass(frozen=True)
class SweepRow:
    """One sweep in the results index."""

    sweep_id: int
    name: str
    started: str
    status: str
    href: str | None
    counts: dict[str, int] = field(default_factory=dict)


def rel_href(target: Path, base: Path, directory: bool = False) -> str:
    """``target`` as a URL relative to the directory ``base`` (percent-encoded)."""
    rel = os.path.relpath(target, base).replace(os.sep, "/")
    return quote(rel) + ("/" if directory and not rel.endswith("/") else "")


def _evidence(cell: CellResult, base: Path) -> tuple[Link, ...]:
    """Links to a cell's run directory and its console/result files, only those on disk
    (retention prunes old run directories: no dead links on a fresh page)."""
    if not cell.run_dir or not Path(cell.run_dir).is_dir():
        return ()
    run = Path(cell.run_dir)
    links = [Link("run", rel_href(run, base, directory=True))]
    links += [Link(label, rel_href(run / name, base)) for label, name in EVIDENCE
              if (run / name).is_file()]
    return tuple(links)


def _detail(cell: CellResult) -> str:
    if cell.disagree:
        return f"{cell.fails} of {cell.runs} runs bad"
    parts = [f"{cell.runs} runs"] if cell.runs > 1 else []
    if cell.attempts > 1:
        parts.append(f"{cell.attempts} attempts")
    return ", ".join(parts)


class _Page:
    """Builds the views of one sweep page (matrix, regressions, comparison, history)."""

    def __init__(self, report: SweepReport, base: Path) -> None:
        self.report, self.base = report, base
        self.results = Path(report.results_dir)
        self.cells = {c.key.id: c for c in report.cells}
        self.labels = {k.spec: k.label for k in report.kernels}
        self.new_regressions = self._regression_cells()

    def _regression_cells(self) -> set[str]:
        """Tonight's new-regression cells: named by id (the regression's or its comparison
        row's), else the track's cell on the first bad kernel."""
        ids = {c.cell_id for c in self.report.by_category(Category.NEW_REGRESSION)
               if c.cell_id}
        for r in self.report.regressions:
            ids |= {r.cell_id} if r.cell_id else {
                c.key.id for c in self.report.cells
                if (c.key.line, c.key.reproducer, c.key.params, c.key.kernel)
                == (r.line, r.reproducer, r.params, r.first_bad)}
        return ids

    def label(self, spec: str) -> str:
        return self.labels.get(spec, spec)

    def lines(self) -> list[LineGroup]:
        """Kernels grouped by line (lines in the report's order), oldest kernel first."""
        groups: dict[str, list[KernelRef]] = {}
        for k in self.report.kernels:
            groups.setdefault(k.line, []).append(k)
        known = {(k.line, k.spec) for k in self.report.kernels}
        for c in self.report.cells:  # a cell of a kernel the list lost: still shown
            if (c.key.line, c.key.kernel) not in known:
                known.add((c.key.line, c.key.kernel))
                groups.setdefault(c.key.line, []).append(KernelRef(
                    line=c.key.line, spec=c.key.kernel, label=c.kernel_label or c.key.kernel,
                    order=c.kernel_order))
        return [LineGroup(line, tuple(sorted(ks, key=lambda k: k.order)))
                for line, ks in groups.items()]

    def cell_view(self, cell: CellResult) -> CellView:
        return CellView(cell=cell, css=f"v-{cell.status.value}", verdict=VERDICT[cell.status],
                        detail=_detail(cell), anchor=f"cell-{cell.key.id}",
                        links=_evidence(cell, self.base),
                        regression=cell.key.id in self.new_regressions)

    def rows(self, lines: list[LineGroup]) -> list[MatrixRow]:
        """One row per reproducer × param set ("default" first), cells in column order."""
        by_key = {(c.key.line, c.key.kernel, c.key.reproducer, c.key.params): c
                  for c in self.report.cells}
        repros = list(self.report.reproducers)
        repros += sorted({c.key.reproducer for c in self.report.cells} - set(repros))
        rows: list[MatrixRow] = []
        for repro in repros:
            params = list(dict.fromkeys(c.key.params for c in self.report.cells
                                        if c.key.reproducer == repro)) or ["default"]
            params.sort(key=lambda p: p != "default")
            for p in params:
                cells = [by_key.get((g.line, k.spec, repro, p)) for g in lines for k in g.kernels]
                rows.append(MatrixRow(repro, p, tuple(
                    self.cell_view(c) if c else None for c in cells)))
        return rows

    def marks(self, history: Iterable[HistoryMark], cell_id: str) -> tuple[Mark, ...]:
        out = []
        for m in history:
            page = self.results / f"sweep-{m.sweep_id}" / "index.html"
            if m.sweep_id == self.report.sweep_id:
                href: str | None = f"#cell-{cell_id}" if cell_id in self.cells else None
            else:
                href = rel_href(page, self.base) if page.is_file() else None
            kernel = f" on {self.label(m.kernel)}" if m.kernel else ""
            out.append(Mark(css=f"v-{m.status.value}", href=href,
                            title=f"sweep #{m.sweep_id} {m.date}: {VERDICT[m.status]}{kernel}"))
        return tuple(out)

    def history(self) -> list[TrackHistory]:
        tracks = []
        for cell_id, marks in self.report.history.items():
            cell = self.cells.get(cell_id)
            label = f"{cell.key.track} on {self.label(cell.key.kernel)}" if cell else cell_id
            tracks.append(TrackHistory(label, f"cell-{cell_id}" if cell else None,
                                       self.marks(marks, cell_id)))
        return sorted(tracks, key=lambda t: t.label)

    def regression(self, r: Regression) -> RegressionView:
        span = f"last good {self.label(r.last_good)} .. first bad {self.label(r.first_bad)}"
        culprit = f"{short(r.culprit)} {r.culprit_subject or ''}".strip() if r.culprit else ""
        outcome = {
            RegressionStatus.FOUND: f"culprit {culprit}" if culprit else f"found: {span}",
            RegressionStatus.DOUBTFUL: "doubtful: the bisection named "
                                       f"{culprit or 'a culprit'}, but it was not confirmed "
                                       f"(treat it as a lead, not a result); {span}",
            RegressionStatus.BISECTING: f"bisecting {span}",
            RegressionStatus.FAILED: f"bisection failed to name a culprit; {span}",
            RegressionStatus.NOT_BISECTED: f"not bisected; {span}",
        }[r.status]
        href = None
        if r.campaign_report and Path(r.campaign_report).is_file():
            href = rel_href(Path(r.campaign_report), self.base)
        cell_id = r.cell_id or next(
            (i for i in sorted(self.new_regressions) if i in self.cells
             and (self.cells[i].key.line, self.cells[i].key.reproducer, self.cells[i].key.params)
             == (r.line, r.reproducer, r.params)), None)
        return RegressionView(r, outcome, r.status is RegressionStatus.DOUBTFUL, href,
                              f"cell-{cell_id}" if cell_id in self.cells else None)

    def categories(self) -> list[CategoryGroup]:
        groups = []
        for cat in Category:
            changes = tuple(ChangeView(c, f"cell-{c.cell_id}" if c.cell_id in self.cells
                                       else None,
                                       self.marks(self.report.history.get(c.cell_id or "", []),
                                                  c.cell_id or ""))
                            for c in self.report.by_category(cat))
            if changes:
                groups.append(CategoryGroup(cat, cat.value.replace(" ", "-"), changes))
        return groups

    def context(self) -> dict[str, Any]:
        lines = self.lines()
        return {"report": self.report, "lines": lines, "rows": self.rows(lines),
                "regressions": [self.regression(r) for r in self.report.regressions],
                "categories": self.categories(), "history": self.history(),
                "legend": LEGEND, "label": self.label,
                "counts": {cat.value: len(self.report.by_category(cat)) for cat in Category},
                "index_href": rel_href(self.results / "index.html", self.base)}


# ------------------------------------------------------------------ JUnit


def _iso_naive(stamp: str) -> str | None:
    """A timestamp as the JUnit schema's xs:dateTime without zone (UTC), or None."""
    try:
        dt = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def _one_line(text: str, limit: int = 500) -> str:
    flat = " ".join(xml_safe(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _testcase(suite: ET.Element, report: SweepReport, cell: CellResult) -> None:
    k = cell.key
    case = ET.SubElement(suite, "testcase", name=xml_safe(f"{k.reproducer}[{k.params}] on "
                                                          f"{k.kernel}"),
                         classname=xml_safe(f"{report.name}.{k.line}"),
                         time=f"{cell.total_s:.3f}")
    reason = _one_line(cell.reason or VERDICT[cell.status])
    if cell.status is CellStatus.BAD:
        ET.SubElement(case, "failure", message=reason, type="bad").text = xml_safe(
            cell.excerpt or cell.reason)
    elif cell.status is CellStatus.INFRA:
        ET.SubElement(case, "error", message=reason, type="infra").text = xml_safe(
            cell.excerpt or cell.reason)
    elif cell.status is CellStatus.SKIP:
        ET.SubElement(case, "skipped", message=reason)
    elif cell.status is CellStatus.PENDING:
        ET.SubElement(case, "skipped", message="not run")
    out = [f"runs: {cell.runs}, bad: {cell.fails}, attempts: {cell.attempts}"]
    if cell.run_dir:
        out.append(f"evidence: {cell.run_dir}")
    ET.SubElement(case, "system-out").text = xml_safe("\n".join(out))


def _counts(cells: list[CellResult]) -> dict[str, str]:
    def n(*statuses: CellStatus) -> str:
        return str(sum(1 for c in cells if c.status in statuses))

    return {"tests": str(len(cells)), "failures": n(CellStatus.BAD),
            "errors": n(CellStatus.INFRA), "skipped": n(CellStatus.SKIP, CellStatus.PENDING),
            "time": f"{sum(c.total_s for c in cells):.3f}"}


def junit_xml(report: SweepReport) -> str:
    """The sweep as JUnit XML: a testsuite per kernel line, a testcase per cell.

    BAD is a failure (the excerpt as its text), INFRA an error (no result is
    not the kernel's fault, and CI shows errors apart), SKIP and PENDING are
    skipped.  The attributes are the ones the Jenkins and GitLab parsers
    read; the root ``<testsuites>`` carries no ``skipped`` (not in the schema)."""
    root = ET.Element("testsuites", name=xml_safe(f"sweep {report.name} #{report.sweep_id}"))
    total = _counts(report.cells)
    root.attrib.update({k: v for k, v in total.items() if k != "skipped"})
    by_line: dict[str, list[CellResult]] = {}
    for k in report.kernels:
        by_line.setdefault(k.line, [])
    for c in report.cells:
        by_line.setdefault(c.key.line, []).append(c)
    order = {(k.line, k.spec): k.order for k in report.kernels}
    stamp = _iso_naive(report.started)
    for i, (line, cells) in enumerate(by_line.items()):
        if not cells:
            continue
        cells.sort(key=lambda c: (order.get((c.key.line, c.key.kernel), c.kernel_order),
                                  c.key.kernel, c.key.reproducer, c.key.params))
        suite = ET.SubElement(root, "testsuite", {"name": xml_safe(line), "id": str(i),
                                                  "package": xml_safe(report.name),
                                                  **_counts(cells)})
        if stamp:
            suite.set("timestamp", stamp)
        for cell in cells:
            _testcase(suite, report, cell)
    ET.indent(root)
    # ASCII with character references: the same bytes whatever the locale's encoding
    body = ET.tostring(root, encoding="unicode").encode("ascii", "xmlcharrefreplace")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body.decode("ascii") + "\n"


# ------------------------------------------------------------------ writing


def _html_env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(["html", "j2"]),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def _md_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(md=campaign_report.md_escape, code=campaign_report.md_code,
                       block=_md_block)
    return env


def _md_block(text: str) -> str:
    """Text as an indented Markdown code block: literal, and no fence to close early."""
    return "\n".join("    " + line for line in _utf8_safe(text).splitlines() or [""])


def _ascii_html(text: str) -> str:
    """The page as ASCII with character references: it reads the same whatever
    encoding the locale gives :func:`write_atomic`."""
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _utf8_safe(text: str) -> str:
    """Lone surrogates (undecodable console bytes) as "?", so writing cannot fail."""
    return text.encode("utf-8", "replace").decode("utf-8")


def write_site(report: SweepReport) -> SitePaths:
    """Write this sweep's files, then the results index and the latest pointer.

    ``report.json`` is written first: the index is built from the
    ``report.json`` of every sweep in the results directory, this one
    included, so a sweep whose page was written is always listed."""
    sweep_dir = Path(report.sweep_dir)
    results_dir = Path(report.results_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    paths = SitePaths(page=sweep_dir / "index.html", markdown=sweep_dir / "report.md",
                      json=sweep_dir / "report.json", junit=sweep_dir / "junit.xml",
                      index=results_dir / "index.html", latest=results_dir / "latest.html")
    write_atomic(paths.json, _utf8_safe(report.model_dump_json(indent=2)))
    write_atomic(paths.junit, junit_xml(report))
    ctx = _Page(report, sweep_dir).context()
    write_atomic(paths.markdown,
                 _utf8_safe(_md_env().get_template("sweep-report.md.j2").render(**ctx)))
    ctx["timing_svg"] = Markup(timing_svg(report.timings))
    write_atomic(paths.page,
                 _ascii_html(_html_env().get_template("sweep-page.html.j2").render(**ctx)))
    write_index(results_dir)
    return paths


def _sweep_row(report: SweepReport, sweep_dir: Path, results_dir: Path) -> SweepRow:
    page = sweep_dir / "index.html"
    counts = {cat.value: len(report.by_category(cat))
              for cat in (Category.NEW_REGRESSION, Category.FIXED, Category.STILL_FAILING)}
    return SweepRow(sweep_id=report.sweep_id, name=report.name, started=report.started,
                    status=report.status.value, counts=counts,
                    href=rel_href(page, results_dir) if page.is_file() else None)


def read_sweeps(results_dir: Path) -> list[SweepRow]:
    """One row per ``sweep-*/report.json`` in ``results_dir``, newest (highest id) first.

    The sweep's directory is where its report.json was found, not the path
    stored in it, so a moved results directory still links right.  A report
    that cannot be read is listed as such rather than hidden: a missing night
    is what a person looks for."""
    rows: list[SweepRow] = []
    for path in results_dir.glob("sweep-*/report.json"):
        match = SWEEP_DIR.match(path.parent.name)
        if not match:
            continue
        try:
            report = SweepReport.model_validate_json(path.read_text())
        except (OSError, ValueError, pydantic.ValidationError) as exc:
            log.warning("%s: unreadable sweep report: %s", path, exc)
            page = path.parent / "index.html"
            rows.append(SweepRow(sweep_id=int(match.group(1)), name="?", started="",
                                 status=f"unreadable report.json ({type(exc).__name__})",
                                 href=rel_href(page, results_dir) if page.is_file() else None))
            continue
        rows.append(_sweep_row(report, path.parent, results_dir))
    rows.sort(key=lambda r: r.sweep_id, reverse=True)
    return rows


def write_index(results_dir: Path) -> tuple[Path, Path]:
    """``index.html`` (every sweep, newest first) and ``latest.html`` in ``results_dir``;
    also the ``latest`` symlink (to the newest sweep's directory) for shells and scripts."""
    rows = read_sweeps(results_dir)
    latest = next((r for r in rows if r.href), None)
    env = _html_env()
    index, latest_html = results_dir / "index.html", results_dir / "latest.html"
    write_atomic(index, _ascii_html(env.get_template("sweep-index.html.j2").render(
        rows=rows, latest=latest)))
    write_atomic(latest_html, _ascii_html(env.get_template("sweep-latest.html.j2").render(
        latest=latest)))
    if latest is not None:
        _point_latest(results_dir, f"sweep-{latest.sweep_id}")
    return index, latest_html


def _point_latest(results_dir: Path, target: str) -> None:
    """Swap the ``latest`` symlink atomically (a new link renamed over the old one)."""
    link = results_dir / "latest"
    if link.exists() and not link.is_symlink():
        log.warning("%s exists and is not a symlink: not replaced", link)
        return
    tmp = results_dir / f".latest.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target, target_is_directory=True)
        tmp.replace(link)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("%s: could not point it at %s: %s", link, target, exc)
