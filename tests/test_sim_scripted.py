"""The simulation engine on the scripted backend: determinism, planted errors, events, cancellation."""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter

import pytest

from curator.sim import SimConfig, Simulation
from curator.sim.events import Flagged, MessageAdded, SimulationDone, TrajectoryFinished, TrajectoryStarted
from curator.sim.gold import gold_items
from curator.sim.toolsets import EVERYDAY, SimToolset, demo_names, demo_toolset
from curator.sim.backends.scripted import write_instruction
from store.taxonomy import MaskPolicy
from store import Store
from store.toolcalls import ToolCall, parse_openai_call

import random

POLICY = MaskPolicy.of()


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "sim.db") as opened:
        yield opened


def contents(store: Store) -> list[tuple]:
    """Everything a run wrote except ids and timestamps, ordered by trajectory index."""
    out = []
    for t in store.iter_trajectories():
        messages = [(m.role, m.content, json.dumps(m.tool_calls), m.raw, m.weight) for m in t.messages]
        out.append((t.meta["index"], t.instruction, t.status, t.reason, messages, sorted((g.message_index, g.code)
                                                                                            for g in t.tags)))
    return sorted(out)


async def test_same_seed_same_data_whatever_the_concurrency(tmp_path):
    runs = []
    for i, concurrency in enumerate((1, 7, 7)):
        with Store.open(tmp_path / f"{i}.db") as store:
            seed = 3 if i < 2 else 4
            config = SimConfig(toolset="weather", n=30, concurrency=concurrency, seed=seed)
            await Simulation(store, config, policy=POLICY).run()
            runs.append(contents(store))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


async def test_two_hundred_trajectories_hold_every_planted_error(store):
    config = SimConfig(toolset=EVERYDAY, n=200, concurrency=16, seed=11, error_rate=0.5, instability_rate=0.05)
    summary = await Simulation(store, config, policy=POLICY).run()
    assert (summary.started, summary.complete + summary.failed) == (200, 200)
    trajectories = list(store.iter_trajectories())
    assert len(trajectories) == 200 and {t.status for t in trajectories} <= {"complete", "failed"}
    assert len({t.meta["index"] for t in trajectories}) == 200  # none lost, none duplicated
    planted = Counter(m["kind"] for t in trajectories for m in t.meta["plan"]["mistakes"] if m)
    assert set(planted) == set(config.error_mix)
    tags = Counter(g.code for t in trajectories for g in t.tags)
    for code in ("tool_hallucination", "param_hallucination", "param_missing", "param_invalid", "parse_error",
                 "tool_call_failure", "tool_instability"):
        assert tags[code] > 0, code
    assert all(t.backend == "scripted" and t.model == "scripted-v1" for t in trajectories)


async def test_each_mistake_is_followed_by_the_intended_call(store):
    config = SimConfig(toolset=EVERYDAY, n=60, seed=5, error_rate=1.0, instability_rate=0)
    await Simulation(store, config, policy=POLICY).run()
    for t in store.iter_trajectories():
        made = [m for m in t.messages if m.role == "assistant" and m.tool_calls]
        intended = [ToolCall(c["name"], c["arguments"]) for c in t.meta["plan"]["calls"]]
        kept = [parse_openai_call(m.tool_calls[0]) for m in made if m.weight == 1 and m.raw is None]
        kept_calls = [(c.name, c.arguments) for c in kept]
        assert all((c.name, c.arguments) in kept_calls for c in intended), t.id
        for message in t.messages:  # every call has its answer right after it
            if message.tool_calls:
                answer = t.messages[message.index + 1]
                assert answer.role == "tool" and answer.tool_call_id == message.tool_calls[0]["id"]
        masked = [m for m in made if m.weight == 0]
        flagged = [k["kind"] for k in t.meta["plan"]["mistakes"] if k["kind"] != "wrong_tool"]
        assert len(masked) == len(flagged), t.id


async def test_unparseable_calls_are_steps_with_their_raw_text(store):
    config = SimConfig(toolset="weather", n=20, seed=2, error_rate=1.0, error_mix={"parse_error": 1.0})
    await Simulation(store, config, policy=POLICY).run()
    for t in store.iter_trajectories():
        broken = [m for m in t.messages if m.raw is not None]
        assert broken and all(m.weight == 0 for m in broken)
        assert any(g.code == "parse_error" for g in t.tags)
        assert t.status == "complete"


async def test_events_follow_the_store(store):
    sim = Simulation(store, SimConfig(toolset="currency", n=12, concurrency=4, seed=1), policy=POLICY)
    started, finished, seen = set(), {}, Counter()
    async for event in sim.events():
        seen[type(event).__name__] += 1
        if isinstance(event, TrajectoryStarted):
            started.add(event.trajectory_id)
            assert event.trajectory_id in sim.running and len(sim.running) <= 4
            assert store.trajectory(event.trajectory_id).instruction == event.instruction
        elif isinstance(event, MessageAdded):
            assert event.trajectory_id in started
            stored = store.messages(event.trajectory_id)[event.message.index]
            assert (stored.role, stored.content) == (event.message.role, event.message.content)
        elif isinstance(event, TrajectoryFinished):
            finished[event.trajectory_id] = event.status
            assert store.trajectory(event.trajectory_id).status == event.status
        elif isinstance(event, Flagged):
            assert isinstance(event.codes, list)
        else:
            assert isinstance(event, SimulationDone)
            assert event.summary.complete == 12 and event.summary.messages == seen["MessageAdded"]
    assert seen["SimulationDone"] == 1 and len(finished) == 12 == len(started)


async def test_cancel_marks_running_trajectories_and_keeps_the_rest(store):
    sim = Simulation(store, SimConfig(toolset="books", n=400, concurrency=6, seed=9), policy=POLICY)
    finished = 0
    async for event in sim.events():
        if isinstance(event, TrajectoryFinished):
            finished += 1
            if finished == 20:
                sim.cancel()
        if isinstance(event, SimulationDone):
            summary = event.summary
    assert summary.cancelled and summary.started < 400
    statuses = Counter((t.status, t.reason) for t in store.iter_trajectories())
    assert statuses[("running", None)] == 0
    assert statuses[("failed", "cancelled")] >= 1
    assert sum(statuses.values()) == summary.started == summary.complete + summary.failed


async def test_leaving_the_event_loop_early_cancels_the_run(store):
    sim = Simulation(store, SimConfig(toolset="books", n=300, concurrency=4), policy=POLICY)
    async with contextlib.aclosing(sim.events()) as events:
        async for event in events:
            if isinstance(event, MessageAdded):
                break
    assert sim.summary.cancelled
    assert not store.trajectory_ids(status="running")


async def test_a_cancelled_consumer_task_cancels_the_run(store):
    sim = Simulation(store, SimConfig(toolset="books", n=300, concurrency=4), policy=POLICY)
    messages = asyncio.Event()

    async def follow() -> None:
        async for event in sim.events():
            if isinstance(event, MessageAdded):
                messages.set()

    task = asyncio.create_task(follow())
    await messages.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sim.summary.cancelled and not store.trajectory_ids(status="running")


def test_demo_toolsets_and_their_requests():
    assert {"weather", "currency", "dictionary", "books", "calendar", EVERYDAY} <= set(demo_names())
    everyday = SimToolset(demo_toolset(EVERYDAY))
    names = everyday.box.names
    assert len(names) >= 20 and {"getWeatherForecast", "getWeatherHistory", "getWeatherAlerts"} <= set(names)
    config = SimConfig(clarify_rate=0.0, error_rate=0.0)
    for i in range(300):
        instruction = write_instruction(everyday, random.Random(i), config, set())
        assert not re.search(r"[{}<>\[\]]", instruction.text), instruction.text
        assert not any(name in instruction.text for name in names)
        for call in instruction.meta["plan"]["calls"]:
            assert everyday.box.check(ToolCall(call["name"], call["arguments"])) == [], call


def test_gold_items_are_held_out_and_single_step():
    toolset = demo_toolset(EVERYDAY)
    training = {write_instruction(SimToolset(toolset), random.Random(f"gold:0:{i}"), SimConfig(error_rate=0,
                clarify_rate=0), set()).text for i in range(50)}
    items = gold_items(toolset, 300, seed=0, avoid=training)
    assert len(items) == 300 and len({i.id for i in items}) == 300
    assert not {i.messages[1]["content"] for i in items} & training
    box = SimToolset(toolset).box
    for item in items:
        assert len(item.calls) == 1 and box.check(item.calls[0]) == []
        assert item.messages[-1]["role"] in ("user", "tool")
    assert gold_items(toolset, 5, seed=0) == gold_items(toolset, 5, seed=0)


def test_unknown_toolset_is_a_one_line_error(store):
    from store.errors import InputError

    with pytest.raises(InputError, match="no toolset named 'nope'"):
        Simulation(store, SimConfig(toolset="nope", n=1), policy=POLICY)


async def test_an_in_memory_store_is_written_inline():
    with Store.open(":memory:") as store:
        sim = Simulation(store, SimConfig(toolset="dictionary", n=5, seed=3), policy=POLICY)
        assert (await sim.run()).complete == 5
        assert len(store.trajectory_ids(status="complete")) == 5
        with pytest.raises(RuntimeError, match="runs once"):
            await sim.run()
