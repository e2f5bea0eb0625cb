"""The sweep report site: what people, mail and CI systems read from a sweep."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from bisector.sweep.model import CellStatus, RegressionStatus, SweepReport
from bisector.sweep.site import junit_xml, read_sweeps, write_site
from bisector.sweep.svg import SVG_NS, timing_svg
from tests.fakes.sweep_report import (
    DEBIAN,
    GRE,
    KERNELS,
    dead_links,
    meta_refresh_target,
    parse_html,
    sample_report,
)

HOSTILE = "<script>alert(1)</script>"


def _cell_status(report: SweepReport, index: int, status: CellStatus) -> None:
    report.cells[index] = report.cells[index].model_copy(update={"status": status})


def test_junit_parses_and_counts_match_the_cells(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    _cell_status(report, 0, CellStatus.PENDING)
    root = ET.parse(write_site(report).junit).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("8", "4", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["debian-6.1", "mainline"]
    for suite in suites.values():
        cases = suite.findall("testcase")
        assert suite.get("tests") == str(len(cases))
        for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert suite.get(attr) == str(sum(1 for c in cases if c.find(tag) is not None))
        assert float(suite.get("time", "x")) == sum(float(c.get("time", "x")) for c in cases)
    names = [c.get("name") for c in root.iter("testcase")]
    assert f"{GRE}[default] on {KERNELS[1].spec}" in names
    skipped = [s.get("message") for s in root.iter("skipped")]
    assert skipped.count("not run") == 1 and len(skipped) == 2


def test_junit_failure_carries_the_excerpt_and_infra_is_an_error(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    root = ET.fromstring(junit_xml(report))
    case = next(c for c in root.iter("testcase")
                if c.get("name") == f"{GRE}[default] on {KERNELS[1].spec}")
    failure = case.find("failure")
    assert failure is not None and "inner MAC 00:00:00:00:00:00" in (failure.text or "")
    errors = [e.get("message") or "" for e in root.iter("error")]
    assert len(errors) == 1 and "qemu-system-x86_64" in errors[0]


def test_junit_stays_valid_xml_with_console_control_characters(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    report.cells[1] = report.cells[1].model_copy(
        update={"excerpt": "\x1b[31mBUG: oops\x1b[0m\x00 end", "reason": "nul\x00here"})
    root = ET.fromstring(junit_xml(report))
    texts = [f.text or "" for f in root.iter("failure")]
    assert any("BUG: oops" in t for t in texts)


def test_hostile_reason_is_escaped_in_the_html_page(tmp_path: Path) -> None:
    paths = write_site(sample_report(tmp_path, bad_reason=HOSTILE))
    text = paths.page.read_text()
    assert HOSTILE not in text
    root = parse_html(text)
    assert not root.find_all("script")
    assert any(HOSTILE in n.text() for n in root.find_all("td", "cell"))
    assert any(n.attrs.get("title") == HOSTILE for n in root.find_all("td", "cell"))


def test_hostile_reason_is_escaped_in_junit_and_markdown(tmp_path: Path) -> None:
    paths = write_site(sample_report(tmp_path, bad_reason=HOSTILE))
    raw = paths.junit.read_text()
    assert HOSTILE not in raw
    messages = [f.get("message") for f in ET.fromstring(raw).iter("failure")]
    assert HOSTILE in messages
    assert "<script>" not in paths.markdown.read_text()


def test_every_relative_link_of_every_page_resolves(tmp_path: Path) -> None:
    for sweep_id in (1, 2, 3):
        paths = write_site(sample_report(tmp_path, sweep_id=sweep_id))
    pages = [paths.page, paths.index, paths.latest,
             *(tmp_path / "results").glob("sweep-*/index.html")]
    hrefs = 0
    for page in pages:
        text = page.read_text()
        assert dead_links(page, text) == [], page
        hrefs += len([n for n in parse_html(text).iter() if "href" in n.attrs])
    assert hrefs > 40  # the pages do link: evidence, campaign report, history, index
    target = meta_refresh_target(paths.latest.read_text())
    assert target and (paths.latest.parent / target).resolve() == paths.page.resolve()


def test_cells_link_to_their_evidence_and_regression_to_its_campaign(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    root = parse_html(write_site(report).page.read_text())
    hrefs = {n.attrs["href"] for n in root.find_all("a")}
    run = Path(report.cells[1].run_dir or "")
    rel = run.relative_to(Path(report.sweep_dir)).as_posix()
    assert {f"{rel}/", f"{rel}/console.log", f"{rel}/result.json"} <= hrefs
    assert "../../runs/campaign-7/report.html" in hrefs


def test_new_regression_is_highlighted_and_listed_with_its_culprit(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    root = parse_html(write_site(report).page.read_text())
    marked = root.find_all("td", "new-regression")
    assert [n.attrs["id"] for n in marked] == [f"cell-{report.regressions[0].cell_id}"]
    assert "NEW REGRESSION" in marked[0].text() and "v-bad" in marked[0].classes
    box = root.find_all("div", "regression")
    assert len(box) == 1 and "3f1c2a9b8d7e" in box[0].text()


def test_doubtful_regression_says_so_plainly(tmp_path: Path) -> None:
    report = sample_report(tmp_path, regression_status=RegressionStatus.DOUBTFUL)
    box = parse_html(write_site(report).page.read_text()).find_all("div", "regression")[0]
    assert "doubtful" in box.classes
    assert "Doubtful." in box.text() and "not confirmed" in box.text()


def test_comparison_rows_follow_the_category_order(tmp_path: Path) -> None:
    root = parse_html(write_site(sample_report(tmp_path)).page.read_text())
    heads = [n.text() for n in root.find_all("tr", "cat")]
    assert [re.sub(r" \(\d+\)$", "", h) for h in heads] == [
        "New regression", "Fixed", "Still failing", "Newly untestable"]


def test_matrix_columns_are_kernels_grouped_by_line(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    report.kernels.reverse()  # the order within a line comes from KernelRef.order
    root = parse_html(write_site(report).page.read_text())
    lines = [n.text() for n in root.find_all("th", "line")]
    kernels = [n.attrs["title"] for n in root.find_all("th", "kernel")]
    assert lines == ["mainline", DEBIAN]
    assert kernels == [KERNELS[2].spec, KERNELS[3].spec, KERNELS[0].spec, KERNELS[1].spec]
    rows = [n.text() for n in root.find_all("th", "repro")]
    assert rows == [f"{GRE} [default]", "ipvs-gue-inner-mac [default]"]


def test_index_lists_sweeps_newest_first_from_their_report_json(tmp_path: Path) -> None:
    for sweep_id in (2, 10, 7):
        write_site(sample_report(tmp_path, sweep_id=sweep_id))
    results = tmp_path / "results"
    (results / "sweep-11").mkdir()
    (results / "sweep-11" / "report.json").write_text("{not json")
    assert [r.sweep_id for r in read_sweeps(results)] == [11, 10, 7, 2]
    write_site(sample_report(tmp_path, sweep_id=3))
    root = parse_html((results / "index.html").read_text())
    firsts = [row.find_all("td")[0].text() for row in root.find_all("tbody")[0].find_all("tr")]
    assert firsts == ["#11", "#10", "#7", "#3", "#2"]
    assert "unreadable" in root.find_all("tbody")[0].find_all("tr")[0].text()
    assert (results / "latest").resolve() == (results / "sweep-10").resolve()


def test_report_json_round_trips(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    assert SweepReport.model_validate_json(write_site(report).json.read_text()) == report


def test_timing_svg_is_well_formed_inline_and_standalone(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    svg = ET.fromstring(timing_svg(report.timings))
    assert svg.tag == f"{{{SVG_NS}}}svg"
    assert len(svg.findall(f"{{{SVG_NS}}}polyline")) == 2
    assert len(svg.findall(f"{{{SVG_NS}}}circle")) == 2 * len(report.timings)
    page = write_site(report).page.read_text()
    inline = page[page.index("<svg"):page.index("</svg>") + len("</svg>")]
    assert ET.fromstring(inline).tag == f"{{{SVG_NS}}}svg"
    assert ET.fromstring(timing_svg([])).tag == f"{{{SVG_NS}}}svg"
