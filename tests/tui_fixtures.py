"""The TUI tests' helpers: a small deterministic store (fixed ids, timestamps and contents), the screen as
text, and waiting for a condition."""
from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

from rich.cells import cell_len
from textual.app import App
from textual.pilot import Pilot

from store import Message, Store, Tag, Tool, Toolset, Trajectory

_SVG = "http://www.w3.org/2000/svg"
_LINE = re.compile(r"-line-(\d+)\)$")
STAMP = "2026-01-01T00:00:00.000Z"
WEATHER = Toolset("weather", [
    Tool("getWeatherForecast", "Forecast for a city.", {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
    }),
    Tool("getWeatherHistory", "Past weather for a city.", {
        "type": "object", "properties": {"city": {"type": "string"}, "date": {"type": "string"}},
        "required": ["city", "date"],
    }),
    Tool("getWeatherAlerts", "Active alerts for a region.", {
        "type": "object", "properties": {"region": {"type": "string"}}, "required": ["region"],
    }),
], "Weather for any city.")


def call(call_id: str, name: str, arguments: dict[str, object]) -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def trajectories() -> list[Trajectory]:
    system = Message("system", "You can call the weather tools.")
    return [
        Trajectory("traj-01", "weather", "Forecast for Paris, 3 days", "complete", backend="scripted",
                   created_at=STAMP, updated_at=STAMP, tags=[Tag("param_missing", "auto", 2)], messages=[
            system,
            Message("user", "What's the weather in Paris for the next 3 days?"),
            Message("assistant", "Let me check.", tool_calls=[call("c1", "getWeatherForecast", {"days": 3})],
                    weight=0),
            Message("tool", json.dumps({"error": "missing 1 required positional argument: 'city'"}),
                    tool_call_id="c1"),
            Message("assistant", "Retrying with the city.",
                    tool_calls=[call("c2", "getWeatherForecast", {"city": "Paris", "days": 3})]),
            Message("tool", json.dumps({"city": "Paris", "forecast": ["sun", "rain", "sun"]}), tool_call_id="c2"),
            Message("assistant", "Sun, rain, then sun again in Paris."),
        ]),
        Trajectory("traj-02", "weather", "Alerts for Brittany", "complete", backend="scripted",
                   created_at=STAMP, updated_at=STAMP, messages=[
            system,
            Message("user", "Are there weather alerts in Brittany?"),
            Message("assistant", None, tool_calls=[call("c1", "getWeatherAlerts", {"region": "Brittany"})]),
            Message("tool", json.dumps({"alerts": []}), tool_call_id="c1"),
            Message("assistant", "No alerts in Brittany right now."),
        ]),
        Trajectory("traj-03", "weather", "Yesterday in Oslo", "failed", backend="scripted", reason="max steps",
                   created_at=STAMP, updated_at=STAMP, tags=[Tag("wrong_tool", "auto", 2)], messages=[
            system,
            Message("user", "How warm was it in Oslo yesterday?"),
            Message("assistant", None, tool_calls=[call("c1", "getWeatherForecast", {"city": "Oslo"})]),
            Message("tool", json.dumps({"city": "Oslo", "forecast": ["snow"]}), tool_call_id="c1"),
        ]),
        Trajectory("traj-04", "weather", "Rain in Lima tomorrow?", "complete", backend="scripted",
                   created_at=STAMP, updated_at=STAMP, messages=[
            system,
            Message("user", "Will it rain in Lima tomorrow?"),
            Message("assistant", None, tool_calls=[call("c1", "getWeatherForecast", {"city": "Lima", "days": 1})]),
            Message("tool", json.dumps({"city": "Lima", "forecast": ["rain"]}), tool_call_id="c1"),
            Message("assistant", "Yes, rain is expected in Lima tomorrow."),
        ]),
    ]


def make_store(path: Path) -> Store:
    store = Store.open(path)
    store.add_toolset(WEATHER)
    store.insert_trajectories(trajectories())
    return store


def screen_text(app: App[object]) -> str:
    """What the terminal shows now, as plain text: the app's SVG screenshot, read back line by line.

    ``App.export_screenshot`` is Textual's public view of the whole screen (dialogs over the screens
    below them included); each of its text runs names its line and starts at ``x`` = column × cell width.
    """
    root = ElementTree.fromstring(app.export_screenshot())
    lines: dict[int, str] = {}
    for run in root.iter(f"{{{_SVG}}}text"):
        line = _LINE.search(run.get("clip-path", ""))
        text = (run.text or "").replace("\xa0", " ").rstrip("\n")
        if line is None or not text:
            continue
        cell = float(run.get("textLength", "0")) / len(run.text or " ")
        row = int(line.group(1))
        before = lines.get(row, "")
        lines[row] = before + " " * (round(float(run.get("x", "0")) / cell) - cell_len(before)) + text
    return "\n".join(lines.get(row, "").rstrip() for row in range(app.size.height))


async def wait_until(pilot: Pilot[object], condition: Callable[[], object], seconds: float = 20.0) -> None:
    """Let the app run (timers, workers, other processes) until ``condition()`` holds.

    Fails after ``seconds`` naming the condition (its source line) and showing the screen as it was.
    """
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds:g} s: {_describe(condition)}\n"
                                 f"the screen shows:\n{screen_text(pilot.app)}")
        await pilot.pause(0.1)


def _describe(condition: Callable[[], object]) -> str:
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return repr(condition)
