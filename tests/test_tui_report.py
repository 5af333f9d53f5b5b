"""The app's coverage report screen: `c` on the home screen, its tables and charts against a count of the store,
inert data, `g` to compute again, Esc back."""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest
from textual.widgets import DataTable
from tui_fixtures import STAMP, call, make_store, screen_text, wait_until

from curator.app import CuratorApp
from curator.screens.home import HomeScreen
from curator.screens.report import ReportScreen
from curator.settings import Config
from store import Message, Store, Trajectory

HOSTILE_TOOL = "[bold red]boom\x1b[2J"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with make_store(tmp_path / "report.db") as opened:
        opened.insert_trajectories([Trajectory(
            "traj-05", "weather", "Something odd", "complete", created_at=STAMP, updated_at=STAMP, messages=[
                Message("user", "Call the odd tool."),
                Message("assistant", None, tool_calls=[call("c1", HOSTILE_TOOL, {"x": 1})]),
                Message("tool", "{}", tool_call_id="c1"),
                Message("assistant", "Done."),
            ])])
        opened.decide("traj-01", "accept", annotator="ann")
        opened.decide("traj-02", "reject", annotator="ann")
        yield opened


def counted(store: Store) -> dict[str, tuple[int, int]]:
    """(trajectories, calls) per tool of the weather schema, counted over the store's trajectories."""
    calls: Counter[str] = Counter()
    trajectories: dict[str, set[str]] = defaultdict(set)
    for trajectory in store.iter_trajectories():
        for message in trajectory.messages:
            for entry in message.tool_calls or []:
                calls[entry["function"]["name"]] += 1
                trajectories[entry["function"]["name"]].add(trajectory.id)
    return {tool.name: (len(trajectories[tool.name]), calls[tool.name]) for tool in store.toolset("weather").tools}


def rows(table: DataTable) -> list[list[str]]:
    return [[str(getattr(cell, "plain", cell)) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def opened(app: CuratorApp, pilot) -> ReportScreen:
    await pilot.press("c")
    await wait_until(pilot, lambda: isinstance(app.screen, ReportScreen) and "computed in" in screen_text(app))
    return app.screen


async def test_c_opens_the_report_with_the_stores_numbers(store: Store) -> None:
    app = CuratorApp(store, Config(), screen="home", annotator="ann")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await opened(app, pilot)
        tools = {row[0]: row for row in rows(screen.query_one("#report-tools", DataTable))}
        for tool, (trajectories, calls) in counted(store).items():
            assert tools[tool][1:3] == [str(trajectories), str(calls)], tool
        assert tools["getWeatherHistory"][4] == "city, date"  # never called: both parameters missing
        assert tools["(not in schema): 1 name"][2] == "1"
        overview = rows(screen.query_one("#report-toolsets", DataTable))
        assert overview == [["weather", "5", "6", "2/3", "3/5", "60%", "0"]]
        decisions = rows(screen.query_one("#report-decisions", DataTable))
        assert decisions == [["weather", "1", "1", "0", "0", "3"]]
        errors = {(r[0], r[1]): r[2:] for r in rows(screen.query_one("#report-errors", DataTable))}
        assert errors[("getWeatherForecast", "param_missing")] == ["1", "0"]
        assert errors[("getWeatherForecast", "wrong_tool")] == ["1", "0"]
        text = screen_text(app)
        assert "Calls per tool" in text and "Error tags per tool" in text
        assert "getWeatherForecast┤" in text and "getWeatherAlerts┤" in text  # the bars' labels
        assert "[bold red]boom\\x1b[2J ×1" in text  # markup and the escape sequence stay text
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


async def test_g_computes_the_report_again(store: Store) -> None:
    app = CuratorApp(store, Config(), screen="home", annotator="ann")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await opened(app, pilot)
        with Store.open(store.path) as other:  # another process adds a call to the tool nobody called
            other.insert_trajectories([Trajectory(
                "traj-06", "weather", "Yesterday in Rome", "complete", created_at=STAMP, updated_at=STAMP, messages=[
                    Message("user", "Yesterday in Rome?"),
                    Message("assistant", None, tool_calls=[call("c1", "getWeatherHistory",
                                                                {"city": "Rome", "date": "2025-01-01"})]),
                    Message("tool", "{}", tool_call_id="c1"), Message("assistant", "Mild.")])])
        await pilot.press("g")
        table = screen.query_one("#report-tools", DataTable)
        await wait_until(pilot, lambda: {r[0]: r for r in rows(table)}["getWeatherHistory"][2] == "1")
        assert rows(screen.query_one("#report-toolsets", DataTable))[0][4:] == ["5/5", "100%", "0"]


async def test_the_home_screen_names_the_key(store: Store) -> None:
    app = CuratorApp(store, Config(), screen="home", annotator="ann")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "coverage report" in screen_text(app)
        assert "Coverage report" in {c.title for c in app.get_system_commands(app.screen)}
