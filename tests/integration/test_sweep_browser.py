"""The sweep page in a real browser (Debian's headless Chromium): what a person sees.

``--dump-dom`` gives the DOM after the page loaded (the page needs no
script, so it is the HTML as parsed); ``--screenshot`` is the evidence a
reviewer looks at, kept at ``build/evidence/sweep-screenshot.png``.  Colours
are checked as the classes of the cells plus the stylesheet rules that give
those classes their backgrounds: computed styles are not in a DOM dump.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bisector.sweep.site import write_site
from tests.fakes.sweep_report import KERNELS, dead_links, parse_html, sample_report

REPO = Path(__file__).resolve().parents[2]
EVIDENCE = REPO / "build" / "evidence" / "sweep-screenshot.png"


def chromium() -> str:
    """Chromium's path; a missing browser fails the test (it is part of the setup)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: `make test` installs it (Debian package "
                    "chromium); or run: apt-get install --no-install-recommends chromium")
    return path


def headless(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run with its own profile (as root it needs --no-sandbox)."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


def test_sweep_page_as_a_person_sees_it(tmp_path: Path) -> None:
    for sweep_id in (4, 5):  # earlier nights: the history marks link to their pages
        write_site(sample_report(tmp_path, sweep_id=sweep_id))
    report = sample_report(tmp_path, sweep_id=6)
    page = write_site(report).page
    url = page.as_uri()

    dom_text = headless(tmp_path, "--dump-dom", url).stdout
    dom = parse_html(dom_text)
    matrix = dom.find_all("table", "matrix")
    assert len(matrix) == 1, "no kernels × reproducers table in the rendered page"
    headers = [th.text() for th in matrix[0].find_all("th", "kernel")]
    for k in KERNELS:
        assert any(h.startswith(k.label) for h in headers), (k.label, headers)

    marked = matrix[0].find_all("td", "new-regression")
    assert len(marked) == 1 and "NEW REGRESSION" in marked[0].text()
    assert marked[0].attrs["id"] == f"cell-{report.regressions[0].cell_id}"

    shown = {c for td in matrix[0].find_all("td", "cell") for c in td.classes
             if c.startswith("v-")}
    assert shown == {"v-good", "v-bad", "v-skip", "v-infra"}
    css = " ".join(s.text() for s in dom.find_all("style"))
    for cls in (*shown, "v-pending"):
        assert re.search(rf"\.{cls}\{{background:", css), f"no background colour for .{cls}"
    assert re.search(r"\.new-regression\{outline:\d+px solid", css)

    assert dead_links(page, dom_text) == []

    shot = tmp_path / "sweep-screenshot.png"
    headless(tmp_path, f"--screenshot={shot}", "--window-size=1400,1000", url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, len(data)
    EVIDENCE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, EVIDENCE)
    print(f"sweep page screenshot: {EVIDENCE}")
