"""The ``sharegpt`` export loads in LLaMA-Factory (``formatting: sharegpt``) without a dropped example.

The rules, from llamafactory 0.9.5 (PyPI), ``src/llamafactory/data/converter.py``
``SharegptDatasetConverter.__call__`` (the same in hiyouga/LLaMA-Factory@908cd68e457daf38e7aae14cbc99e5ac01524496):
turn ``i`` must be ``human``/``observation`` when ``i`` is even and ``gpt``/``function_call`` when it is odd
("Invalid role tag"), the count must be even ("Invalid message count"), and a broken conversation becomes an
empty example that ``processor/supervised.py`` drops; ``system`` comes from the column (a leading
``system`` turn would override it); ``tools`` is passed on as it is and ``formatter.py`` ``ToolFormatter``
``json.loads`` it; ``FunctionFormatter`` ``json.loads`` each ``function_call`` value and
``json.dumps`` its ``arguments``, so they must be an object, not text.

The tests with LLaMA-Factory's own parser and converter run where it is installed (a throwaway venv with
``pip install llamafactory``); the others check the rules above on the file.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from curator.sim import SimConfig, Simulation
from data_helpers import TIME, rich_store
from store import Message, Store, Trajectory
from store.formats.sharegpt import ANSWERS, PROMPTS, export_sharegpt
from store.taxonomy import MaskPolicy

#: The dataset_info.json entry the README gives for the export.
DATASET_INFO = {"curator": {"file_name": "curated.sharegpt.jsonl", "formatting": "sharegpt",
                            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
                            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                                     "assistant_tag": "gpt", "observation_tag": "observation",
                                     "function_tag": "function_call"}}}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def accepted(example: dict[str, Any]) -> bool:
    """SharegptDatasetConverter's rule: prompts at even positions, answers at odd ones, an even count."""
    turns = example["conversations"]
    return len(turns) % 2 == 0 and all(t["from"] in (PROMPTS, ANSWERS)[i % 2] for i, t in enumerate(turns))


def message_store(path: Path, *conversations: list[Message]) -> Store:
    store = Store.open(path)
    store.add_toolset(TIME)
    store.insert_trajectories([Trajectory(id=f"t{i}", toolset="time", instruction="?", status="complete",
                                          source="imported", messages=m) for i, m in enumerate(conversations)])
    return store


@pytest.fixture(scope="module")
def sim_export(tmp_path_factory) -> Path:
    """A scripted simulation with planted mistakes: masked calls, some of them unparseable."""
    out = tmp_path_factory.mktemp("sim")
    with Store.open(out / "sim.db") as store:
        config = SimConfig(toolset="everyday", n=20, seed=2, error_rate=0.8,
                           error_mix={"parse_error": 1.0, "param_missing": 1.0})
        asyncio.run(Simulation(store, config, policy=MaskPolicy.of()).run())
        assert any(m.weight == 0 for t in store.iter_trajectories() for m in t.messages)
        summary = export_sharegpt(store, out / "sim.sharegpt.jsonl", "all")
    assert summary.trajectories == 20 and not summary.left_out
    return out / "sim.sharegpt.jsonl"


def test_every_exported_conversation_follows_the_converter_rules(sim_export, tmp_path):
    with rich_store(tmp_path / "rich.db") as store:
        export_sharegpt(store, tmp_path / "rich.jsonl", "all")
    for example in lines(sim_export) + lines(tmp_path / "rich.jsonl"):
        assert accepted(example), example["conversations"]
        assert isinstance(example["system"], str)
        assert example["tools"] == "" or isinstance(json.loads(example["tools"]), list)
        for turn in example["conversations"]:
            if turn["from"] == "function_call":
                calls = json.loads(turn["value"])
                assert all(isinstance(c["name"], str) and "arguments" in c for c in
                           (calls if isinstance(calls, list) else [calls]))


def test_masked_turns_are_left_out_with_the_answers_to_them(tmp_path):
    with rich_store(tmp_path / "rich.db") as store:
        export_sharegpt(store, tmp_path / "rich.jsonl", "all")
    w2 = lines(tmp_path / "rich.jsonl")[1]  # both its calls are masked (one by the flagger, one by hand)
    assert [t["from"] for t in w2["conversations"]] == ["human", "gpt"]
    assert "town" not in json.dumps(w2)


def test_a_trailing_prompt_is_cut_and_a_broken_order_is_left_out_and_counted(tmp_path):
    user, answer = Message("user", "Time in Quito?"), Message("assistant", "10:00.")
    with message_store(tmp_path / "s.db",
                       [user, answer, Message("user", "And in Lima?")],  # ends on the user: cut
                       [user, Message("user", "hello?"), answer],  # two user turns in a row
                       [user, Message("assistant", "bad", weight=0)],  # nothing left to train
                       [user, Message("assistant", "{garbled", weight=0, raw="{garbled"), answer],  # a retry
                       [user, answer]) as store:
        summary = export_sharegpt(store, tmp_path / "out.jsonl", "all")
    assert summary.trajectories == 3
    assert summary.left_out == {"turns do not alternate": 1, "no assistant turn to train": 1}
    assert "(2 left out: 1 no assistant turn to train, 1 turns do not alternate)" in summary.describe()
    assert [[t["from"] for t in e["conversations"]] for e in lines(tmp_path / "out.jsonl")] == [["human", "gpt"]] * 3


def llamafactory_converter(tmp_path: Path):
    """LLaMA-Factory's own dataset_info parser and ShareGPT converter, on the README's entry."""
    converter = pytest.importorskip("llamafactory.data.converter")
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments

    (tmp_path / "dataset_info.json").write_text(json.dumps(DATASET_INFO))
    [attr] = get_dataset_list(["curator"], str(tmp_path))
    assert attr.formatting == "sharegpt" and attr.tools == "tools"
    return converter.get_dataset_converter("sharegpt", attr, DataArguments(dataset_dir=str(tmp_path)))


@pytest.mark.slow  # importing llamafactory alone takes ~5 s
def test_llamafactory_converts_every_example_and_parses_its_calls_and_tools(sim_export, tmp_path):
    convert = llamafactory_converter(tmp_path)
    from llamafactory.data.formatter import FunctionFormatter, ToolFormatter

    function = FunctionFormatter(slots=["{{content}}"], tool_format="default")
    tools = ToolFormatter(tool_format="default")
    for example in lines(sim_export):
        aligned = convert(example)
        assert len(aligned["_prompt"]) % 2 == 1 and len(aligned["_response"]) == 1, example["conversations"]
        assert aligned["_tools"] == example["tools"] and tools.apply(content=aligned["_tools"])
        for turn in aligned["_prompt"] + aligned["_response"]:
            if turn["role"] == "function":
                function.apply(content=turn["content"])
