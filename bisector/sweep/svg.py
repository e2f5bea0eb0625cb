"""A hand-written SVG plot of boot and test time per night.

Built with :mod:`xml.etree.ElementTree` from numbers only: the page gets a
plot without a plotting library (matplotlib is a heavy dependency for two
polylines), and the element tree escapes every label, so the output is valid
XML whatever a date string holds.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from .model import NightTiming

SVG_NS = "http://www.w3.org/2000/svg"

#: characters XML 1.0 cannot carry at all (not even as &#…;): C0 controls other
#: than tab/newline/CR, lone surrogates, U+FFFE/U+FFFF
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: object) -> str:
    """``text`` with the characters XML cannot hold replaced by U+FFFD.

    A console excerpt carries ANSI escapes (ESC) and sometimes NULs; the
    element tree writes them as they are and the file no longer parses, so a
    CI system would drop the whole report."""
    return _NOT_XML.sub("\ufffd", str(text))


# the series: (attribute of NightTiming, label, colour)
SERIES: tuple[tuple[str, str, str], ...] = (
    ("boot_s", "boot", "#1f6fb4"),
    ("test_s", "test", "#d9731a"),
)

WIDTH, HEIGHT = 880, 250
LEFT, RIGHT, TOP, BOTTOM = 56, 44, 30, 46


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k not below ``value`` (a readable axis end)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp + 1e-9:
            return float(step * exp)
    return float(10 * exp)  # pragma: no cover - the loop always returns


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _x_of(i: int, n: int) -> float:
    inner = WIDTH - LEFT - RIGHT
    return LEFT + inner / 2 if n == 1 else LEFT + inner * i / (n - 1)


def _y_of(v: float, top: float) -> float:
    inner = HEIGHT - TOP - BOTTOM
    return TOP + inner * (1 - v / top)


def _el(parent: ET.Element, tag: str, attrs: dict[str, str]) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


def _text(parent: ET.Element, x: float, y: float, text: str,
          attrs: dict[str, str] | None = None) -> None:
    _el(parent, "text", {"x": _fmt(x), "y": _fmt(y), **(attrs or {})}).text = xml_safe(text)


def _axes(svg: ET.Element, nights: Sequence[NightTiming], top: float) -> None:
    """Grid lines with their seconds, and the nights along the bottom."""
    for k in range(5):
        v = top * k / 4
        y = _y_of(v, top)
        _el(svg, "line", {"x1": str(LEFT), "x2": str(WIDTH - RIGHT), "y1": _fmt(y),
                          "y2": _fmt(y), "stroke": "#ddd" if k else "#888"})
        _text(svg, LEFT - 6, y + 4, _fmt(v), {"text-anchor": "end"})
    mid = _fmt(TOP + (HEIGHT - TOP - BOTTOM) / 2)
    _text(svg, 14, float(mid), "seconds",
          {"transform": f"rotate(-90 14 {mid})", "text-anchor": "middle"})
    every = max(1, math.ceil(len(nights) / 10))  # at most ~10 labels, so they never overlap
    for i, night in enumerate(nights):
        if i % every and i != len(nights) - 1:
            continue
        x = _x_of(i, len(nights))
        _text(svg, x, HEIGHT - BOTTOM + 16, f"#{night.sweep_id}", {"text-anchor": "middle"})
        _text(svg, x, HEIGHT - BOTTOM + 30, night.date[:10],
              {"fill": "#666", "text-anchor": "middle"})


def _series(svg: ET.Element, nights: Sequence[NightTiming], top: float) -> None:
    n = len(nights)
    for attr, label, colour in SERIES:
        pts = [(_x_of(i, n), _y_of(float(getattr(t, attr)), top)) for i, t in enumerate(nights)]
        if n > 1:
            _el(svg, "polyline", {"fill": "none", "stroke": colour, "stroke-width": "2",
                                  "points": " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in pts)})
        for (x, y), t in zip(pts, nights, strict=True):
            dot = _el(svg, "circle", {"cx": _fmt(x), "cy": _fmt(y), "r": "3.5", "fill": colour})
            tip = ET.SubElement(dot, "title")
            tip.text = xml_safe(f"sweep #{t.sweep_id} {t.date}: {label} {_fmt(getattr(t, attr))} s"
                                f" (boot {_fmt(t.boot_s)} s, test {_fmt(t.test_s)} s,"
                                f" wall {_fmt(t.wall_s)} s)")
    # legend, top right
    x = WIDTH - RIGHT - 150
    for j, (_, label, colour) in enumerate(SERIES):
        _el(svg, "rect", {"x": _fmt(x + j * 75), "y": "8", "width": "14", "height": "4",
                          "fill": colour})
        _text(svg, x + j * 75 + 19, 14, f"{label} s")


def timing_svg(nights: Sequence[NightTiming]) -> str:
    """An inline ``<svg>`` of boot and test seconds per night, oldest night on the left.

    No nights gives a small plot that says so, so the page layout is the same
    on the first night."""
    svg = ET.Element("svg", {"xmlns": SVG_NS, "width": str(WIDTH), "height": str(HEIGHT),
                             "viewBox": f"0 0 {WIDTH} {HEIGHT}", "role": "img",
                             "class": "timings", "font-family": "system-ui, sans-serif",
                             "font-size": "11"})
    title = ET.SubElement(svg, "title")
    title.text = "Boot and test time per night (seconds)"
    if not nights:
        _text(svg, WIDTH / 2, HEIGHT / 2, "no timings recorded yet",
              {"fill": "#666", "text-anchor": "middle"})
        return ET.tostring(svg, encoding="unicode")
    peak = max(max(t.boot_s, t.test_s) for t in nights)
    top = nice_ceiling(peak * 1.05)
    _axes(svg, nights, top)
    _series(svg, nights, top)
    return ET.tostring(svg, encoding="unicode")
