"""The coverage report as tables and bar charts: what `curator report`, its HTML file and the app's report screen
show, built once here so the three agree.

Cells are plain strings; data among them (toolset, tool and parameter names) is made inert by each renderer
(``store.text.inert`` for the terminal and the app, ``visible`` and HTML escaping for the file).
"""
from __future__ import annotations

from dataclasses import dataclass

from store.coverage import DECISIONS, CoverageReport, Spread, ToolCoverage, ToolsetCoverage

NONE = "(none)"


@dataclass(frozen=True)
class Section:
    """One table: a title, its column names, its rows; ``numeric`` columns are right-aligned."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    numeric: frozenset[int]


@dataclass(frozen=True)
class Bars:
    """One bar chart: a label and a value per bar, biggest first; ``telling`` is the end that matters when only
    some bars fit (``low``: the least called tools are the gaps)."""

    key: str
    title: str
    bars: list[tuple[str, int]]
    telling: str = "high"

    def shown(self, limit: int) -> tuple[list[tuple[str, int]], str]:
        """At most ``limit`` bars, from the telling end, and the title saying so when some are left out."""
        if len(self.bars) <= limit:
            return self.bars, self.title
        if self.telling == "low":
            return self.bars[-limit:], f"{self.title} (the {limit} lowest of {len(self.bars)})"
        return self.bars[:limit], f"{self.title} (the {limit} highest of {len(self.bars)})"


def sections(report: CoverageReport) -> list[Section]:
    """The report's tables; the per-tool ones name the toolset in a first column when there are several."""
    toolsets = report.toolsets
    lead: tuple[str, ...] = ("toolset",) if len(toolsets) > 1 else ()

    def led(t: ToolsetCoverage) -> tuple[str, ...]:
        return (name(t),) if lead else ()

    overview_columns = ("toolset", "trajectories", "calls", "tools called", "parameters exercised", "share",
                        "duplicates")
    overview = [(name(t), str(t.trajectories), str(t.calls), f"{t.tools_called}/{len(t.known_tools)}",
                 f"{t.parameters_exercised}/{t.parameters}", percent(t.parameter_share), str(t.duplicates))
                for t in toolsets]
    tools = [(*led(t), tool_name(tool), str(tool.trajectories), str(tool.calls), str(tool.distinct_arguments),
              missing(tool)) for t in toolsets for tool in t.all_tools]
    errors = [(*led(t), tool_name(tool), code, str(n["auto"]), str(n["human"]))
              for t in toolsets for tool in t.all_tools for code, n in tool.errors.items()]
    decisions = [(name(t), *(str(t.decisions[d]) for d in DECISIONS)) for t in toolsets]
    instructions = [(name(t), str(t.instructions.count), spread(t.instructions.chars), spread(t.instructions.words),
                     str(t.instructions.distinct_words), ratio(t.instructions.type_token_ratio),
                     ratio(t.instructions.distinct_2)) for t in toolsets]
    shift = len(lead)
    return [
        Section("toolsets", "Toolsets", overview_columns, overview, frozenset(range(1, len(overview_columns)))),
        Section("tools", "Tools", (*lead, "tool", "trajectories", "calls", "distinct arguments",
                                   "parameters never exercised"), tools, frozenset({shift + 1, shift + 2, shift + 3})),
        Section("errors", "Error codes by tool (effective tags of the calling message)",
                (*lead, "tool", "code", "auto", "human"), errors, frozenset({shift + 2, shift + 3})),
        Section("decisions", "Decisions", ("toolset", *DECISIONS), decisions, frozenset(range(1, len(DECISIONS) + 1))),
        Section("instructions", "Instructions (min / median / p90 / max)",
                ("toolset", "count", "characters", "words", "distinct words", "type-token ratio", "distinct-2"),
                instructions, frozenset({1, 4, 5, 6})),
    ]


def charts(report: CoverageReport) -> list[Bars]:
    """Calls per tool and error tags per tool (on the calling messages, auto and human together), biggest first."""
    several = len(report.toolsets) > 1
    tools = [(t, tool) for t in report.toolsets for tool in t.all_tools]

    def label(toolset: ToolsetCoverage, tool: ToolCoverage) -> str:
        return f"{name(toolset)}/{tool_name(tool)}" if several else tool_name(tool)

    calls = [(label(t, tool), tool.calls) for t, tool in tools]
    errors = [(label(t, tool), sum(sum(n.values()) for n in tool.errors.values())) for t, tool in tools]
    return [Bars("calls", "Calls per tool", _biggest(calls), telling="low"),
            Bars("errors", "Error tags per tool", _biggest([e for e in errors if e[1]]))]


def _biggest(bars: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return sorted(bars, key=lambda b: -b[1])


def name(toolset: ToolsetCoverage) -> str:
    return NONE if toolset.toolset is None else toolset.toolset


def tool_name(tool: ToolCoverage) -> str:
    """A tool's name; the calls to names not in the schema say how many names they were."""
    if tool.called_as:
        return f"{tool.tool}: {len(tool.called_as)} name{'s' if len(tool.called_as) != 1 else ''}"
    return tool.tool


def missing(tool: ToolCoverage, shown: int = 3) -> str:
    """A tool's parameters never exercised; for the calls to names not in the schema, the names most called."""
    if tool.called_as:
        names = [f"{n} ×{calls}" for n, calls in list(tool.called_as.items())[:shown]]
        return ", ".join(names) + (", …" if len(tool.called_as) > shown else "")
    return ", ".join(tool.never_exercised) or "–"


def percent(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def spread(value: Spread | None) -> str:
    if value is None:
        return "–"
    return " / ".join(_number(v) for v in (value.min, value.median, value.p90, value.max))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
