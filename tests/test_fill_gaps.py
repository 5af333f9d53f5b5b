"""`curator simulate --fill-gaps`: the user agent aims at the tools and parameters the coverage report shows
least covered, on the scripted backend (seeded) and in the openai backend's writer prompt."""
from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest
from data_helpers import run_cli
from fake_openai import FakeOpenAI

from curator.sim import SimConfig, Simulation
from curator.sim.backends.openai import OpenAIBackend
from curator.sim.focus import EVERY, Focus, focus_at
from curator.sim.retry import Backoff
from store import Store
from store.coverage import toolset_coverage
from store.errors import InputError
from store.taxonomy import MaskPolicy
from store.toolcalls import parse_openai_call

POLICY = MaskPolicy.of()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 scripted everyday trajectories: on 25 tools and 51 parameters, some never called or passed."""
    db = tmp_path_factory.mktemp("gaps") / "seeded.db"
    with Store.open(db) as store:
        asyncio.run(Simulation(store, SimConfig(toolset="everyday", n=40, seed=1), policy=POLICY).run())
        store.make_self_contained()
    return db


def copy(seeded: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copy(seeded, tmp_path / name))


def share(db: Path) -> tuple[int, int, int]:
    """(parameters exercised, parameters, tools called) of the everyday toolset."""
    with Store.open(db) as store:
        found = toolset_coverage(store, "everyday")
    return found.parameters_exercised, found.parameters, found.tools_called


def test_fill_gaps_exercises_more_parameters_than_the_same_run_without(seeded: Path, tmp_path: Path, capsys) -> None:
    before = share(seeded)
    assert before[0] < before[1]  # there are gaps to fill
    plain, filled = copy(seeded, tmp_path, "plain.db"), copy(seeded, tmp_path, "filled.db")
    args = ("simulate", "--toolset", "everyday", "-n", "30", "--seed", "2")
    assert run_cli(capsys, "--db", str(plain), *args)[0] == 0
    code, out, err = run_cli(capsys, "--db", str(filled), *args, "--fill-gaps")
    assert code == 0, err
    without, with_gaps = share(plain), share(filled)
    assert with_gaps[0] > without[0] >= before[0]
    assert with_gaps[:2] == (with_gaps[1], 51) and with_gaps[2] == 25  # every parameter and tool, this seed
    # what it printed: the gaps it aimed at, and the coverage before and after, as the report counts it
    assert "Filling the gaps of everyday" in err
    assert f"{before[0]}/{before[1]} → {with_gaps[0]}/{with_gaps[1]}" in out
    assert "40 → 70" in out


def test_the_focus_shapes_three_requests_in_four(seeded: Path, tmp_path: Path) -> None:
    db = copy(seeded, tmp_path, "focus.db")
    with Store.open(db) as store:
        gaps = toolset_coverage(store, "everyday").gaps()
        config = SimConfig(toolset="everyday", n=24, seed=5, focus=gaps, error_rate=0.0)
        before = set(store.trajectory_ids())
        asyncio.run(Simulation(store, config, policy=POLICY).run())
        new = [t for t in store.iter_trajectories() if t.id not in before]
    assert len(new) == 24
    aimed = {t.meta["index"]: t for t in new if "focus" in t.meta["plan"]}
    assert sorted(aimed) == [i for i in range(24) if i % EVERY != EVERY - 1]
    for index, trajectory in aimed.items():
        focus = focus_at(gaps, index)
        assert trajectory.meta["plan"]["focus"] == {"tool": focus.tool, "parameters": list(focus.parameters)}
        first = parse_openai_call(next(m for m in trajectory.messages if m.tool_calls).tool_calls[0])
        assert first.name == focus.tool and set(focus.parameters) <= set(first.arguments)
    assert {focus_at(gaps, i).tool for i in aimed} == set(gaps)  # every gap had its turn


def test_without_a_focus_the_run_is_the_same_as_before(tmp_path: Path) -> None:
    """An empty focus draws exactly what the writer drew before it existed (seeded runs stay reproducible)."""
    texts = []
    for name, focus in (("a", None), ("b", {})):
        with Store.open(tmp_path / f"{name}.db") as store:
            config = SimConfig(toolset="everyday", n=12, seed=9, **({"focus": focus} if focus is not None else {}))
            asyncio.run(Simulation(store, config, policy=POLICY).run())
            texts.append(sorted((t.meta["index"], t.instruction) for t in store.iter_trajectories()))
    assert texts[0] == texts[1]


def test_no_gaps_simulates_as_usual(tmp_path: Path, capsys) -> None:
    db = tmp_path / "full.db"
    with Store.open(db) as store:
        asyncio.run(Simulation(store, SimConfig(toolset="weather", n=60, seed=1), policy=POLICY).run())
        assert toolset_coverage(store, "weather").gaps() == {}
    code, out, err = run_cli(capsys, "--db", str(db), "simulate", "--toolset", "weather", "-n", "4", "--fill-gaps")
    assert code == 0 and "No gaps in weather" in err and "100% → 100%" in out


@pytest.mark.parametrize("focus, message", [
    ({"noSuchTool": []}, "focus names 'noSuchTool', not a tool of toolset everyday"),
    ({"getWeatherForecast": ["colour"]}, "focus names 'colour', not a parameter of getWeatherForecast"),
])
def test_a_focus_the_toolset_lacks_is_refused(tmp_path: Path, focus, message) -> None:
    with Store.open(tmp_path / "bad.db") as store:
        with pytest.raises(InputError, match=re.escape(message)):
            Simulation(store, SimConfig(toolset="everyday", focus=focus), policy=POLICY)
        assert store.is_empty()  # refused before any trajectory


def test_the_openai_writer_is_asked_for_the_gaps(tmp_path: Path) -> None:
    focus = {"getWeatherRadar": ["zoom"], "getAirQuality": []}
    with FakeOpenAI() as server, Store.open(tmp_path / "openai.db") as store:
        config = SimConfig(backend="openai", base_url=server.base_url, model="m", toolset="weather", n=4,
                           concurrency=1, instruction_batch=4, instability_rate=0.0, focus=focus)
        backend = OpenAIBackend(config.checked(), Backoff(base=0.01, cap=0.05))
        asyncio.run(Simulation(store, config, backend=backend, policy=POLICY).run())
        prompt = next(r for r in server.requests if r.role == "writer").body["messages"][1]["content"]
    assert "of the 4 requests, write these 3, one request each" in prompt
    assert "- one that needs getWeatherRadar and gives a value for: zoom" in prompt
    assert "- one that needs getAirQuality\n" in prompt
    assert [focus_at(focus, i) for i in range(4)] == [Focus("getWeatherRadar", ("zoom",)), Focus("getAirQuality"),
                                                      Focus("getWeatherRadar", ("zoom",)), None]
