"""Small hand-made trajectories for the training tests: a weather toolset whose
tool names share prefixes (getWeatherForecast / getWeatherHistory / getWeatherAlerts)."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


CITY = {"type": "string", "description": "City name"}
TOOLS = [
    _tool("getWeatherForecast", "Forecast for the next days.", {"city": CITY, "days": {"type": "integer"}}, ["city"]),
    _tool("getWeatherHistory", "Past weather on a date.", {"city": CITY, "date": {"type": "string"}}, ["city", "date"]),
    _tool("getWeatherAlerts", "Active weather alerts.", {"city": CITY}, ["city"]),
    _tool("getTime", "Local time in a city.", {"city": CITY}, ["city"]),
]
CITIES = ["Paris", "Oslo", "Lima", "Tokyo", "Cairo", "Quito", "Perth", "Dakar"]


def call(name: str, arguments: dict[str, Any], call_id: str = "c1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def assistant_call(name: str, arguments: dict[str, Any], weight: int = 1, call_id: str = "c1") -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [call(name, arguments, call_id)], "weight": weight}


def tool_result(content: Any, call_id: str = "c1") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": json.dumps(content)}


def trajectory(i: int, city: str, kind: str, with_error: bool = False, extra_turns: int = 0) -> dict[str, Any]:
    """One conversation: a request, (optionally a failed call and its error), the call, the answer."""
    name, args, request = {
        "forecast": ("getWeatherForecast", {"city": city, "days": 3}, f"What will the weather be in {city}?"),
        "history": ("getWeatherHistory", {"city": city, "date": "2024-01-05"}, f"How was the weather in {city} on 2024-01-05?"),
        "alerts": ("getWeatherAlerts", {"city": city}, f"Any weather alerts for {city}?"),
        "time": ("getTime", {"city": city}, f"What time is it in {city}?"),
    }[kind]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": request},
    ]
    if with_error:
        messages += [
            assistant_call(name, {"town": city}, weight=0, call_id="c0"),
            tool_result({"error": "missing required argument 'city'"}, call_id="c0"),
        ]
    messages += [assistant_call(name, args), tool_result({"ok": True, "city": city})]
    messages.append({"role": "assistant", "content": f"Done: here is the {kind} for {city}.", "weight": 1})
    for turn in range(extra_turns):
        messages += [
            {"role": "user", "content": f"And the time in {CITIES[turn % len(CITIES)]}?"},
            assistant_call("getTime", {"city": CITIES[turn % len(CITIES)]}, call_id=f"t{turn}"),
            tool_result({"time": f"1{turn}:00"}, call_id=f"t{turn}"),
            {"role": "assistant", "content": f"It is 1{turn}:00.", "weight": 1},
        ]
    meta = {"source": "simulated", "status": "complete", "decision": "accept", "toolset": "weather", "tags": []}
    return {"id": f"t{i}", "messages": messages, "tools": TOOLS, "meta": meta}


def records(n: int = 16, seed: int = 0, extra_turns: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    kinds = ["forecast", "history", "alerts", "time"]
    return [
        trajectory(i, rng.choice(CITIES), kinds[i % 4], with_error=i % 3 == 0, extra_turns=extra_turns)
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def preference_records(n: int = 8) -> list[dict[str, Any]]:
    """Accepted trajectories and, for each, a rejected one of the same request that calls the wrong tool."""
    rows = []
    for good in records(n):
        bad = json.loads(json.dumps(good))
        bad["id"] = good["id"] + "-bad"
        bad["meta"]["decision"] = "reject"
        first = next(i for i, m in enumerate(bad["messages"]) if m["role"] == "assistant")
        wrong = "getWeatherAlerts" if good["messages"][first]["tool_calls"][0]["function"]["name"] != "getWeatherAlerts" else "getTime"
        bad["messages"][first] = assistant_call(wrong, {"city": "Paris"}, call_id="c9")
        rows += [good, bad]
    return rows


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models are fastest on one thread, above all on a shared CPU: a test module that imports this fixture
    runs every test on one torch thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
