"""A realistic :class:`SweepReport` for the tests of the reporters and notifiers.

Two kernel lines of two kernels each, two reproducers, and one of every
outcome a reader has to tell apart: a new regression (bisected, with its
campaign report on disk), a fix, a track still failing, a kernel that could
not be tested (SKIP) and a cell without a result (INFRA).  Run directories
are created with a console.log and a result.json, so the links a page makes
to its evidence resolve.

It also reads pages back (:func:`parse_html`, :func:`dead_links`) for the
unit tests and the browser test alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bisector.sweep.model import (
    Category,
    CellKey,
    CellResult,
    CellStatus,
    Change,
    HistoryMark,
    KernelRef,
    NightTiming,
    Regression,
    RegressionStatus,
    SweepReport,
    SweepStatus,
)

GRE = "gre-ecn-mac-corruption"
IPVS = "ipvs-gue-inner-mac"

DEBIAN = "debian-6.1"
MAINLINE = "mainline"

KERNELS = (
    KernelRef(line=DEBIAN, spec="debian:6.1.0-55", label="6.1.0-55 (v6.1.190)", order=0,
              upstream="v6.1.190"),
    KernelRef(line=DEBIAN, spec="debian:6.1.0-56", label="6.1.0-56 (v6.1.192)", order=1,
              upstream="v6.1.192"),
    KernelRef(line=MAINLINE, spec="ubuntu-mainline:v6.12.2", label="v6.12.2", order=0),
    KernelRef(line=MAINLINE, spec="ubuntu-mainline:v6.12.3", label="v6.12.3", order=1),
)

CULPRIT = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"

EXCERPT = ("iteration 1: step 'check-mac' failed (exit 1)\n"
           "[check-mac stdout]\ninner MAC 00:00:00:00:00:00, expected 52:54:00:12:34:56")


def _night(sweep_id: int) -> str:
    return f"2025-01-{10 + sweep_id:02d}"


def _cell(sweep_dir: Path, line: str, kernel: KernelRef, repro: str, status: CellStatus,
          reason: str = "", excerpt: str = "", runs: int = 1, fails: int = 0,
          attempts: int = 1) -> CellResult:
    """One cell with its evidence directory (console.log and result.json) on disk."""
    key = CellKey(line=line, kernel=kernel.spec, reproducer=repro)
    run_dir = sweep_dir / "cells" / f"{repro}-default" / f"{kernel.label.split()[0]}-{key.id[:8]}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "console.log").write_text(f"[    0.000000] Linux version {kernel.label}\n")
    (run_dir / "result.json").write_text(json.dumps({"verdict": status.value, "reason": reason}))
    boot = 11.5 + kernel.order
    test = 6.25 if status.tested else 0.0
    return CellResult(key=key, status=status, reason=reason, runs=runs, fails=fails,
                      attempts=attempts, boot_s=boot, test_s=test, total_s=boot + test,
                      run_dir=str(run_dir), excerpt=excerpt, finished="2025-01-01T03:10:00",
                      kernel_order=kernel.order, kernel_label=kernel.label)


def _history(cell: CellResult, sweep_id: int, ids: dict[tuple[str, str, str], str],
             changes: list[Change]) -> list[HistoryMark]:
    """The last seven nights of a cell, consistent with tonight's comparison: the new
    regression was good before, the fixed track bad, the still-failing one bad for
    three nights; one earlier night had no result."""
    change = next((ch for ch in changes if ch.cell_id == cell.key.id), None)
    marks = []
    for s in range(max(1, sweep_id - 6), sweep_id + 1):
        status, kernel = cell.status, cell.key.kernel
        if s < sweep_id and change is not None:
            kernel = change.previous_kernel or kernel
            status = change.previous_status or status
            if change.category is Category.STILL_FAILING and s < sweep_id - 2:
                status = CellStatus.GOOD
        if s == sweep_id - 3 and cell.key.id == ids[(DEBIAN, KERNELS[0].spec, GRE)]:
            status = CellStatus.INFRA
        marks.append(HistoryMark(sweep_id=s, date=_night(s), status=status, kernel=kernel))
    return marks


def sample_report(tmp_path: Path, *, sweep_id: int = 6, name: str = "nightly",
                  bad_reason: str = "check-mac: inner MAC zeroed",
                  regression_status: RegressionStatus = RegressionStatus.FOUND,
                  status: SweepStatus = SweepStatus.DONE) -> SweepReport:
    """The sweep ``sweep_id`` of ``name`` under ``tmp_path/results``.

    ``bad_reason`` is the new regression's reason (pass hostile text to test
    escaping); ``regression_status`` what its bisection came to.  Calling it
    for several ids in one ``tmp_path`` gives a results directory of several
    nights."""
    results = tmp_path / "results"
    sweep_dir = results / f"sweep-{sweep_id}"
    d55, d56, m2, m3 = KERNELS
    cells = [
        _cell(sweep_dir, DEBIAN, d55, GRE, CellStatus.GOOD, runs=3),
        _cell(sweep_dir, DEBIAN, d56, GRE, CellStatus.BAD, bad_reason, EXCERPT, runs=3, fails=3),
        _cell(sweep_dir, MAINLINE, m2, GRE, CellStatus.BAD, "check-mac: inner MAC zeroed",
              EXCERPT, runs=3, fails=3),
        _cell(sweep_dir, MAINLINE, m3, GRE, CellStatus.GOOD, runs=3),
        _cell(sweep_dir, DEBIAN, d55, IPVS, CellStatus.BAD, "tcpdump: no GUE packet",
              "iteration 2: no GUE packet seen", runs=5, fails=2),
        _cell(sweep_dir, DEBIAN, d56, IPVS, CellStatus.BAD, "tcpdump: no GUE packet",
              "iteration 1: no GUE packet seen", runs=3, fails=3),
        _cell(sweep_dir, MAINLINE, m2, IPVS, CellStatus.SKIP,
              "boot failure: kernel panic - not syncing: VFS: Unable to mount root fs"),
        _cell(sweep_dir, MAINLINE, m3, IPVS, CellStatus.INFRA,
              "no result after 3 attempts: InfraError: qemu-system-x86_64 exited 1",
              attempts=3),
    ]
    ids = {(c.key.line, c.key.kernel, c.key.reproducer): c.key.id for c in cells}
    regression_cell = ids[(DEBIAN, d56.spec, GRE)]
    campaign = tmp_path / "runs" / "campaign-7"
    campaign.mkdir(parents=True, exist_ok=True)
    (campaign / "report.html").write_text("<!DOCTYPE html><title>campaign 7</title>")
    changes = [
        Change(category=Category.NEW_REGRESSION, line=DEBIAN, reproducer=GRE, params="default",
               kernel=d56.spec, status=CellStatus.BAD, previous_kernel=d55.spec,
               previous_status=CellStatus.GOOD, since=_night(sweep_id), nights=1,
               cell_id=regression_cell),
        Change(category=Category.FIXED, line=MAINLINE, reproducer=GRE, params="default",
               kernel=m3.spec, status=CellStatus.GOOD, previous_kernel=m2.spec,
               previous_status=CellStatus.BAD, cell_id=ids[(MAINLINE, m3.spec, GRE)]),
        Change(category=Category.STILL_FAILING, line=DEBIAN, reproducer=IPVS, params="default",
               kernel=d56.spec, status=CellStatus.BAD, previous_kernel=d55.spec,
               previous_status=CellStatus.BAD, since=_night(1), nights=3, flake_rate=0.625,
               note="fails on every kernel of the line", cell_id=ids[(DEBIAN, d56.spec, IPVS)]),
        Change(category=Category.NEWLY_UNTESTABLE, line=MAINLINE, reproducer=IPVS,
               params="default", kernel=m3.spec, status=CellStatus.INFRA,
               previous_kernel=m2.spec, previous_status=CellStatus.GOOD,
               note="no result: the infrastructure failed on every attempt",
               cell_id=ids[(MAINLINE, m3.spec, IPVS)]),
    ]
    regression = Regression(
        id=1, line=DEBIAN, reproducer=GRE, params="default", last_good=d55.spec,
        first_bad=d56.spec, since=_night(sweep_id), status=regression_status,
        culprit=CULPRIT if regression_status in (RegressionStatus.FOUND,
                                                 RegressionStatus.DOUBTFUL) else None,
        culprit_subject="ip_gre: reset inner MAC header in ipgre_xmit()",
        campaign_id=7, campaign_report=str(campaign / "report.html"), excerpt=EXCERPT,
        reproduce=f"bisector run --kernel {d56.spec} --repro reproducers/{GRE}.yaml",
        cell_id=regression_cell)
    history = {c.key.id: _history(c, sweep_id, ids, changes) for c in cells}
    timings = [NightTiming(sweep_id=s, date=_night(s), boot_s=90.0 + 7 * (s % 3),
                           test_s=40.0 + 11 * s, wall_s=600.0 + 25 * s)
               for s in range(max(1, sweep_id - 13), sweep_id + 1)]
    return SweepReport(
        sweep_id=sweep_id, name=name, config_path=str(tmp_path / f"{name}.yaml"),
        started=_night(sweep_id) + "T02:00:00+00:00",
        finished=_night(sweep_id) + "T03:12:30+00:00" if status is SweepStatus.DONE else None,
        status=status, wall_s=4350.0, results_dir=str(results), sweep_dir=str(sweep_dir),
        kernels=list(KERNELS), reproducers=sorted([GRE, IPVS]), cells=cells, changes=changes,
        regressions=[regression], history=history, timings=timings,
        reproducer_files={GRE: f"reproducers/{GRE}.yaml", IPVS: f"reproducers/{IPVS}.yaml"})


# ------------------------------------------------------------ reading pages back


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


@dataclass
class Node:
    """An element of a parsed page: enough of a DOM to ask what a person would see."""

    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        """The element's text, its descendants' included, whitespace collapsed."""
        parts: list[str] = []

        def walk(n: Node) -> None:
            parts.extend(n.texts)
            for c in n.children:
                walk(c)

        walk(self)
        return " ".join(" ".join(parts).split())

    def iter(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if (tag is None or n.tag == tag)
                and (cls is None or cls in n.classes)]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):  # tolerate unclosed children
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].texts.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def dead_links(page: Path, text: str) -> list[str]:
    """The hrefs/srcs of a page that do not resolve: a relative path that is not on
    disk (relative to the page), a #fragment with no element of that id, or an
    absolute URL (which would break when the results directory moves)."""
    root = parse_html(text)
    ids = {n.attrs["id"] for n in root.iter() if "id" in n.attrs}
    dead: list[str] = []
    for node in root.iter():
        for attr in ("href", "src"):
            ref = node.attrs.get(attr)
            if ref is None:
                continue
            parts = urlsplit(ref)
            if parts.scheme or parts.netloc or ref.startswith("/"):
                dead.append(f"{ref} (absolute)")
            elif not parts.path:
                if parts.fragment not in ids:
                    dead.append(f"{ref} (no such anchor)")
            elif not (page.parent / unquote(parts.path)).exists():
                dead.append(ref)
    return dead


def meta_refresh_target(text: str) -> str | None:
    """The URL of a ``<meta http-equiv=refresh>`` (latest.html), for link checks."""
    for node in parse_html(text).find_all("meta"):
        if node.attrs.get("http-equiv", "").lower() == "refresh":
            return node.attrs.get("content", "").split("url=", 1)[-1]
    return None
