"""The coverage report as one self-contained HTML file: inline CSS, inline SVG bar charts, no script and no
external resource, so it opens anywhere (a browser offline, an attachment, a CI artifact).

Every string from the data is made visible (``store.text.visible``: control and bidi characters as escapes)
and HTML-escaped, so a tool named ``<script>`` is text on the page.
"""
from __future__ import annotations

from html import escape
from typing import Iterator

from curator.report_view import Bars, Section
from store.text import SIGN, visible

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #1d232a; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin-top: 2em; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
p.meta { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.empty { color: #57606a; font-style: italic; }
.charts { display: flex; flex-wrap: wrap; gap: 2em; }
.chart { flex: 1 1 30em; }
svg text { font: 12px system-ui, sans-serif; fill: #1d232a; }
svg rect.calls { fill: #3b82c4; }
svg rect.errors { fill: #d1495b; }
"""
BAR_HEIGHT, GAP, LABEL_WIDTH, BAR_WIDTH, VALUE_WIDTH = 18, 4, 260, 300, 60


def page(title: str, subtitle: str, sections: list[Section], charts: list[Bars]) -> str:
    """The whole document."""
    return "".join(_page(title, subtitle, sections, charts))


def _page(title: str, subtitle: str, sections: list[Section], charts: list[Bars]) -> Iterator[str]:
    yield ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{text(title)}</title>\n"
           f"<style>{CSS}</style>\n</head>\n<body>\n<h1>{text(title)}</h1>\n<p class=\"meta\">{text(subtitle)}</p>\n")
    yield "<div class=\"charts\">\n"
    for chart in charts:
        yield from _chart(chart)
    yield "</div>\n"
    for section in sections:
        yield from _table(section)
    yield "</body>\n</html>\n"


def _table(section: Section) -> Iterator[str]:
    yield f"<h2 id=\"{section.key}\">{text(section.title)}</h2>\n<table class=\"{section.key}\">\n<thead><tr>"
    for i, column in enumerate(section.columns):
        yield f"<th{_num(section, i)}>{text(column)}</th>"
    yield "</tr></thead>\n<tbody>\n"
    if not section.rows:
        yield f"<tr><td class=\"empty\" colspan=\"{len(section.columns)}\">none</td></tr>\n"
    for row in section.rows:
        yield "<tr>" + "".join(f"<td{_num(section, i)}>{text(cell)}</td>" for i, cell in enumerate(row)) + "</tr>\n"
    yield "</tbody>\n</table>\n"


def _num(section: Section, column: int) -> str:
    return " class=\"num\"" if column in section.numeric else ""


def _chart(chart: Bars) -> Iterator[str]:
    """A horizontal bar chart in SVG: a label, a bar scaled to the biggest value, the value."""
    yield f"<div class=\"chart\" id=\"chart-{chart.key}\">\n<h2>{text(chart.title)}</h2>\n"
    if not chart.bars:
        yield "<p class=\"meta\">none</p>\n</div>\n"
        return
    top = max(value for _, value in chart.bars) or 1
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    height = len(chart.bars) * (BAR_HEIGHT + GAP)
    yield (f"<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{height}\" "
           f"viewBox=\"0 0 {width} {height}\">\n<title>{text(chart.title)}</title>\n")
    for i, (label, value) in enumerate(chart.bars):
        y = i * (BAR_HEIGHT + GAP)
        bar = round(BAR_WIDTH * value / top)
        middle = y + BAR_HEIGHT * 0.7
        yield (f"<g><text x=\"{LABEL_WIDTH - 6}\" y=\"{middle:.1f}\" text-anchor=\"end\">{text(_clip(label))}</text>"
               f"<rect class=\"{chart.key}\" x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{bar}\" height=\"{BAR_HEIGHT}\">"
               f"<title>{text(label)}: {value}</title></rect>"
               f"<text x=\"{LABEL_WIDTH + bar + 6}\" y=\"{middle:.1f}\">{value}</text></g>\n")
    yield "</svg>\n</div>\n"


def _clip(label: str, width: int = 40) -> str:
    return label if len(label) <= width else label[:width - 1] + "…"


def text(value: str) -> str:
    """Data as inert HTML text: invisible and control characters made visible, then escaped (quotes too)."""
    return escape(visible(value, SIGN), quote=True)
