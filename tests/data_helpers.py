"""Helpers for the format and data-command tests: a store with every kind of review work, and a
content snapshot to prove a failed import left the store exactly as it was."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from store import Correction, GoldItem, Message, Store, Tag, Tool, Toolset, Trajectory
from store.records import from_line
from store.toolcalls import ToolCall

WEATHER = Toolset("weather", [
    Tool("getWeatherForecast", "Forecast for a city.", {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"],
    }),
    Tool("getWeatherHistory", "Past weather.", {"type": "object", "properties": {"city": {"type": "string"}}}),
], description="Weather")
TIME = Toolset("time", [Tool("getTime", "Local time.", {"type": "object", "properties": {"city": {"type": "string"}}})])


def call(name: str, arguments: str, id: str) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def weather_trajectory(id: str, city: str, **fields: Any) -> Trajectory:
    """A recovery: a call with a misspelled argument (masked), the tool's error, the fixed call, the answer."""
    return Trajectory(
        id=id, toolset="weather", instruction=f"Weather in {city}?", status="complete", source="simulated",
        backend="scripted", model="demo", created_at="2025-01-02T03:04:05.000Z",
        messages=[
            Message("system", "You have weather tools."),
            Message("user", f"Weather in {city}?"),
            Message("assistant", "Let me look.", tool_calls=[call("getWeatherForecast", f'{{"town": "{city}"}}', "c1")],
                    weight=0),
            Message("tool", '{"error": "unexpected keyword argument town"}', tool_call_id="c1",
                    name="getWeatherForecast"),
            Message("assistant", None, tool_calls=[call("getWeatherForecast", f'{{"city": "{city}"}}', "c2")]),
            Message("tool", '{"temp": 21}', tool_call_id="c2", name="getWeatherForecast"),
            Message("assistant", f"It is 21 degrees in {city} — sunny ☀."),
        ],
        **fields,
    )


def rich_store(path: Path) -> Store:
    """Three weather trajectories and one time trajectory with tags, reviews, notes, corrections and gold."""
    store = Store.open(path)
    store.add_toolset(WEATHER)
    store.add_toolset(TIME)
    store.insert_trajectories([
        weather_trajectory("w1", "Paris", tags=[Tag("param_hallucination", "auto", 2, note="town")],
                           meta={"seed": 7}),
        weather_trajectory("w2", "Oslo", difficulty="easy"),
        weather_trajectory("w3", "Lima", reason="max turns"),
        Trajectory(id="t1", toolset="time", instruction="Time in Quito?", status="imported", source="imported",
                   messages=[Message("user", "Time in Quito?"),
                             Message("assistant", None, tool_calls=[call("getTime", '{"city": "Quito"}', "x")]),
                             Message("tool", "10:00", tool_call_id="x"),
                             Message("assistant", "It is 10:00.", raw="<raw model output>")]),
    ])
    store.add_tag("w1", "content_error", 4, annotator="ann", note="wrong city")
    store.remove_tag("w1", "param_hallucination", 2, annotator="ann")
    store.add_tag("w2", "other", None, note="whole trajectory")
    store.set_weight("w2", 4, 0)
    store.decide("w1", "accept", annotator="ann")
    review = store.decide("w2", "reject")
    store.undo(review)
    store.decide("w2", "accept")
    store.decide("w3", "reject")
    store.add_note("w1", "nice recovery", 4, annotator="ann")
    store.add_correction(Correction("w1", 2, [call("getWeatherForecast", '{"city": "Paris"}', "c1")], "ann"))
    store.add_gold([
        GoldItem("g-weather", "weather", [], [{"role": "user", "content": "Weather in Rome?"}],
                 [ToolCall("getWeatherForecast", {"city": "Rome"})]),
        GoldItem("g-time", "time", [], [{"role": "user", "content": "Time in Rome?"}], [ToolCall("getTime", {})]),
    ])
    return store


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (full-text index shadow tables aside), to compare a store before and after."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'messages_fts%' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    finally:
        conn.close()


def assert_gold_fits_its_toolsets(store: Store) -> int:
    """Every gold call names a tool of its item's toolset, fits its schema and is judged correct against its
    own item; returns how many items there are."""
    from store.toolcalls import check_call, judge

    items = list(store.gold_items())
    for item in items:
        names = [t.name for t in store.toolset(item.toolset).tools]
        for call in item.calls:
            assert call.name in names
            assert check_call(call, item.tools) == []
            assert judge(call, item.calls, item.tools).cf
    return len(items)


def read_line(text: str) -> dict[str, Any]:
    """One exported JSONL line as a record, its JSON-text fields (``tools``, ``meta``) decoded."""
    return from_line(json.loads(text))


def export_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of an exported JSONL file, decoded as ``read_line`` does."""
    return [read_line(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``curator ARGS`` in-process through its entry point: (exit code, stdout, stderr)."""
    from curator.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def everyday_store(path: Path, n: int = 2000, seed: int = 1) -> Store:
    """A realistic store: ``n`` scripted simulations on the 25-tool ``everyday`` toolset (auto-flagged, so some
    calls are masked), nine in ten accepted, and near the end (past the first blocks a JSON reader infers a
    schema from) corrections on every 40th trajectory and notes on every 50th."""
    import asyncio

    from curator.sim import SimConfig, Simulation
    from store.taxonomy import MaskPolicy

    store = Store.open(path)
    asyncio.run(Simulation(store, SimConfig(toolset="everyday", n=n, seed=seed), policy=MaskPolicy.of()).run())
    ids = store.trajectory_ids()
    with store.transaction():
        for number, trajectory_id in enumerate(ids):
            store.decide(trajectory_id, "reject" if number % 10 == 9 else "accept", annotator="ana")
            if number < len(ids) // 2:
                continue
            if number % 40 == 0:
                step = next(m for m in store.messages(trajectory_id) if m.tool_calls and m.weight)
                fixed = json.loads(json.dumps(step.tool_calls))
                function = fixed[0]["function"]
                function["arguments"] = json.dumps({**json.loads(function["arguments"]), "note": "fixed"})
                store.add_correction(Correction(trajectory_id, step.index, fixed, "ana", "checked by hand"))
            if number % 50 == 0:
                store.add_note(trajectory_id, "the answer could be shorter", None, annotator="ana")
    return store
