"""The posterior heat map (bisector/plot.py): well-formed, one row per run, inert text,
and darker where the mass is."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bisector.outcomes import PosteriorBin, PosteriorHistory, PosteriorRun
from bisector.plot import colour, level, posterior_svg
from bisector.verdict import Verdict

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = 'net: </title><script>alert(1)</script> & "quotes" \x01\x1b[31m'


def history(masses: list[list[float]], subject: str = "change") -> PosteriorHistory:
    """A history over len(masses[0]) one-commit bins, one run per row of ``masses``."""
    n = len(masses[0])
    bins = [PosteriorBin(first=j, last=j, commit=f"{j:040x}", subject=f"{subject} {j}")
            for j in range(n)]
    runs = [PosteriorRun(step=i + 1, commit=f"{i % n:040x}", verdict=Verdict.BAD,
                         iteration=1, mass=row, flake=max(0.0, 1 - sum(row)),
                         top=f"{row.index(max(row)):040x}", top_probability=max(row))
            for i, row in enumerate(masses)]
    return PosteriorHistory(candidates=n, bins=bins, runs=runs)


def parse(h: PosteriorHistory) -> ET.Element:
    return ET.fromstring(str(posterior_svg(h)))


def rows(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "run"]


def darkness(fill: str) -> int:
    """Lower is darker: the sum of the colour's channels."""
    return sum(int(fill[k:k + 2], 16) for k in (1, 3, 5))


FLAT = [[0.25, 0.25, 0.25, 0.2], [0.1, 0.6, 0.2, 0.05], [0.0, 0.9, 0.05, 0.0]]


def test_the_svg_is_well_formed_xml() -> None:
    assert parse(history(FLAT)).tag == f"{SVG}svg"


def test_the_svg_has_one_row_per_snapshot() -> None:
    assert len(rows(parse(history(FLAT)))) == len(FLAT)


def test_a_hostile_subject_stays_text() -> None:
    root = parse(history(FLAT, subject=HOSTILE))  # parses: escaped, control characters gone
    assert not any(el.tag.endswith("script") for el in root.iter())
    tips = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any("</title><script>alert(1)</script> & \"quotes\"" in t for t in tips)


def test_the_bin_with_most_mass_is_the_darkest() -> None:
    h = history(FLAT)
    root = parse(h)
    fills = [r.get("fill", "") for g in rows(root) for r in g.iter(f"{SVG}rect")]
    most = max(m for run in h.runs for m in run.mass)
    assert darkness(colour(level(most))) == min(darkness(f) for f in fills)


def test_no_mass_is_background() -> None:
    assert level(0.0) == 0 and colour(0) == "#ffffff"
