"""A small deterministic store for the TUI tests: fixed ids, timestamps and contents."""
from __future__ import annotations

import json
from pathlib import Path

from store import Message, Store, Tag, Tool, Toolset, Trajectory

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


def screen_text(app) -> str:  # noqa: ANN001 (any App)
    """What the terminal shows now, as plain text."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


async def wait_until(pilot, condition, seconds: float = 20.0) -> None:  # noqa: ANN001 (a Pilot, a callable)
    """Let the app run until ``condition()`` holds (timers and workers run meanwhile)."""
    for _ in range(int(seconds / 0.1)):
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError("timed out waiting for the screen")
