"""`c` on the home screen: the coverage report (``store.coverage``), the tables `curator report` prints and bar
charts of calls and error tags per tool.

The report reads every call of the store (a few seconds at 100,000 trajectories), so it is computed on a
worker thread with its own connection; the screen says so until it arrives, and `g` computes it again.
"""
from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Label, Static
from textual_plotext import PlotextPlot

from curator.report_view import Bars, Section, charts, sections
from curator.screens.base import StoreScreen
from curator.widgets.footer import KeyFooter
from store import Store
from store.coverage import CoverageReport, coverage
from store.text import SIGN, inert, visible

#: The sections, in order, as ``curator.report_view.sections`` builds them.
SECTIONS = ("toolsets", "tools", "errors", "decisions", "instructions")
CHARTS = ("calls", "errors")
#: Bars a chart shows (from its telling end); the tools table has them all.
MAX_BARS = 25


class BarChart(PlotextPlot):
    """A horizontal bar chart of one ``Bars``; labels made visible (plotext's output is read as ANSI)."""

    def show(self, chart: Bars) -> None:
        bars, title = chart.shown(MAX_BARS)
        plt = self.plt
        plt.clear_data()
        plt.title(title)
        self.styles.height = len(bars) + 4  # a row per bar, the title, the frame and the ticks
        if bars:
            labels = [visible(label, SIGN) for label, _ in reversed(bars)]  # plotext draws the first at the bottom
            plt.bar(labels, [value for _, value in reversed(bars)], orientation="horizontal", width=0.3)
        self.refresh()


class ReportScreen(StoreScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("g", "compute", "Refresh", tooltip="Compute the report again"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(Text("computing the coverage report…", "italic"), id="report-status")
        with VerticalScroll(id="report"):
            with Horizontal(id="report-charts"):
                for key in CHARTS:
                    yield BarChart(id=f"chart-{key}")
            for key in SECTIONS:
                yield Label("", id=f"title-{key}", classes="report-title")
                yield DataTable(id=f"report-{key}", show_cursor=False, zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.action_compute()

    def action_compute(self) -> None:
        """`g`: compute the report again (the store may have grown)."""
        self.query_one("#report-status", Static).update(Text("computing the coverage report…", "italic"))
        self._compute()

    @work(thread=True, exclusive=True)
    def _compute(self) -> None:
        start = time.perf_counter()
        with Store.open(self.store.path) as store:
            found = coverage(store)
        self.app.call_from_thread(self._show, found, time.perf_counter() - start)

    def _show(self, found: CoverageReport, seconds: float) -> None:
        if not self.is_attached:
            return
        trajectories = sum(t.trajectories for t in found.toolsets)
        self.query_one("#report-status", Static).update(Text(
            f"{trajectories} trajectories · {len(found.toolsets)} toolset(s) · computed in {seconds:.1f} s "
            "· g computes it again"))
        for section in sections(found):
            self.query_one(f"#title-{section.key}", Label).update(Text(section.title, "bold"))
            fill(self.query_one(f"#report-{section.key}", DataTable), section)
        for chart in charts(found):
            self.query_one(f"#chart-{chart.key}", BarChart).show(chart)


def fill(table: DataTable, section: Section) -> None:
    """A section's columns and rows in ``table``, every cell inert text (numbers right-aligned)."""
    table.clear(columns=True)
    justify = ["right" if i in section.numeric else "left" for i in range(len(section.columns))]
    for column, side in zip(section.columns, justify):
        table.add_column(Text(column, justify=side), key=column)  # type: ignore[arg-type]
    for row in section.rows:
        table.add_row(*(_cell(cell, side) for cell, side in zip(row, justify)))
    if not section.rows:
        table.add_row(Text("none", "dim"), *[""] * (len(section.columns) - 1))


def _cell(cell: str, justify: str) -> Text:
    text = inert(cell)
    text.justify = justify  # type: ignore[assignment]
    return text
