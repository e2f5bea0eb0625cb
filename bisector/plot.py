"""Hand-written SVG for the report: the Bayesian posterior over the range, run by run.

A heat map -- x: position in the candidate range (oldest left), y: run number
(first at the top), colour: posterior mass of that stretch of commits after that
run -- and beside it the line of P(flake).  A reader sees the mass wander, split
and settle on the answer, and which runs moved it.

No plotting library: the picture is a few hundred rectangles, and building it
here keeps what reaches the page under control.  Every coordinate, size and
colour is formatted from numbers; the only text from outside is commit subjects
and shas in ``<title>`` tooltips, which :func:`_text` escapes (and strips of the
control characters XML cannot hold).  So the result is marked safe for the
autoescaping HTML template only once it is complete.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterator, Sequence

from markupsafe import Markup

from .outcomes import PosteriorHistory, PosteriorRun

#: heat-map width in px, and the height the rows share (each 1 to 10 px)
_WIDTH, _HEIGHT = 512.0, 480.0
_LEFT, _TOP, _GAP, _FLAKE_W, _STRIP = 56.0, 28.0, 20.0, 90.0, 10.0
#: the colour of full mass (light to dark: more mass is darker) and the levels between
_DARK = (8, 48, 107)
_LEVELS = 16
#: mass below this is drawn as background (the log scale runs from here to 1)
_FLOOR = 1e-3

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _text(s: object) -> str:
    """A stranger's text as XML character data or an attribute value."""
    return html.escape(_NOT_XML.sub("\ufffd", str(s)), quote=True)


def level(mass: float) -> int:
    """0 (background) .. :data:`_LEVELS` (all the mass): a log scale, so 1/64 -- a
    flat prior over 64 bins -- is already visible, a tail the search has all but
    ruled out fades, and the answer is darkest."""
    if mass <= _FLOOR:
        return 0
    t = (math.log10(min(1.0, mass)) - math.log10(_FLOOR)) / -math.log10(_FLOOR)
    return max(1, round(t * _LEVELS))


def colour(lvl: int) -> str:
    """White for level 0, :data:`_DARK` at the top level, linear in between."""
    t = lvl / _LEVELS
    r, g, b = (round(255 + (c - 255) * t) for c in _DARK)
    return f"#{r:02x}{g:02x}{b:02x}"


def _runs_of_level(levels: Sequence[int]) -> Iterator[tuple[int, int, int]]:
    """(start, length, level) of each stretch of equal, non-background level."""
    start = 0
    for j in range(1, len(levels) + 1):
        if j == len(levels) or levels[j] != levels[start]:
            if levels[start]:
                yield start, j - start, levels[start]
            start = j


def _row(run: PosteriorRun, number: int, y: float, h: float, cw: float) -> str:
    top = "flake" if run.top is None else run.top[:12]
    tip = (f"run {number}: {run.verdict.value.upper()} on {run.commit[:12]} (step {run.step}, "
           f"iteration {run.iteration}); then top {top} at {run.top_probability:.3f}, "
           f"P(flake) {run.flake:.3f}")
    cells = "".join(
        f'<rect x="{_LEFT + s * cw:.2f}" y="{y:.2f}" width="{n * cw:.2f}" height="{h:.2f}" '
        f'fill="{colour(lv)}"/>'
        for s, n, lv in _runs_of_level([level(m) for m in run.mass]))
    return f'<g class="run"><title>{_text(tip)}</title>{cells}</g>'


def posterior_svg(history: PosteriorHistory) -> Markup:
    """The heat map and the flake line of ``history`` as one inline ``<svg>``."""
    runs, bins = history.runs, history.bins
    cw = _WIDTH / max(1, len(bins))
    h = max(1.0, min(10.0, _HEIGHT / max(1, len(runs))))
    heat_h = h * len(runs)
    fx = _LEFT + _WIDTH + _GAP
    width, height = fx + _FLAKE_W + 24, _TOP + heat_h + _STRIP + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="posterior" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
           'font-family="sans-serif" font-size="11">',
           "<title>Posterior mass over the candidate range after each run</title>",
           f'<rect x="{_LEFT}" y="{_TOP}" width="{_WIDTH}" height="{heat_h:.2f}" '
           'fill="#ffffff" stroke="#999999"/>']
    out += [_row(r, i, _TOP + (i - 1) * h, h, cw) for i, r in enumerate(runs, 1)]
    strip_y = _TOP + heat_h + 2
    for j, b in enumerate(bins):  # one tooltip per column: which commits it holds
        tip = (f"commits {b.first + 1}-{b.last + 1} of {history.candidates}, from "
               f"{b.commit[:12]} {b.subject}")
        out.append(f'<rect class="bin" x="{_LEFT + j * cw:.2f}" y="{strip_y:.2f}" '
                   f'width="{cw:.2f}" height="{_STRIP - 2}" fill="{colour(j % 2 + 1)}">'
                   f"<title>{_text(tip)}</title></rect>")
    out.append(f'<rect x="{fx}" y="{_TOP}" width="{_FLAKE_W}" height="{heat_h:.2f}" '
               'fill="#ffffff" stroke="#999999"/>')
    points = " ".join(f"{fx + r.flake * _FLAKE_W:.2f},{_TOP + (i + 0.5) * h:.2f}"
                      for i, r in enumerate(runs))
    if points:
        out.append(f'<polyline class="flake" fill="none" stroke="#bb0000" points="{points}"/>')
    label_y = strip_y + _STRIP + 12
    out += [f'<text x="{_LEFT}" y="{_TOP - 8}">oldest candidate</text>',
            f'<text x="{_LEFT + _WIDTH}" y="{_TOP - 8}" text-anchor="end">new end</text>',
            f'<text x="{_LEFT - 6}" y="{_TOP + 9}" text-anchor="end">run 1</text>',
            f'<text x="{_LEFT - 6}" y="{_TOP + heat_h:.2f}" text-anchor="end">'
            f"run {len(runs)}</text>",
            f'<text x="{fx}" y="{_TOP - 8}">P(flake)</text>',
            f'<text x="{fx}" y="{label_y:.2f}">0</text>',
            f'<text x="{fx + _FLAKE_W}" y="{label_y:.2f}" text-anchor="end">1</text>',
            f'<text x="{_LEFT}" y="{label_y:.2f}">{history.candidates} candidates in '
            f"{len(bins)} columns; darker: more posterior mass (log scale)</text>",
            "</svg>"]
    return Markup("\n".join(out))
