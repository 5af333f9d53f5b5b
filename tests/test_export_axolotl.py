"""The ``axolotl`` export loads in Axolotl's ``type: chat_template`` with ``message_field_training: weight``.

What Axolotl reads, from axolotl 0.19.0 (PyPI), ``src/axolotl/prompt_strategies/chat_template.py``
(the same code is in axolotl-ai-cloud/axolotl@01f6a5c16dbe3bddff00da5446d90e1a93d85dc2, where
``_get_tools`` still refuses tools given as a string):

- ``ChatTemplateStrategy._get_tools``: ``tools`` a ``list[dict]`` (0.19.0 also ``json.loads`` a string),
  each ``function.parameters`` a dict or JSON text that it decodes;
- ``transform_message``: every ``tool_calls[].function.arguments`` string goes through ``json.loads``,
  and a ``JSONDecodeError`` is re-raised, which stops the dataset's preprocessing;
- ``get_conversation_thread`` / ``_tokenize_single_prompt``: a message's ``message_field_training``
  value, when present, decides whether its turn trains (``should_train = train_turn``), so weight 0
  leaves its labels at -100; messages without it fall back to ``roles_to_train``.

The test with the real ``ChatTemplateStrategy`` runs where axolotl is installed (it is not a dependency
of curator: a throwaway venv with ``pip install torch==2.13.0 axolotl`` does it); the others check the
same rules on the file itself.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from curator.sim import SimConfig, Simulation
from data_helpers import WEATHER, rich_store, weather_trajectory
from store import Store
from store.formats import EXPORTERS
from store.formats.axolotl import export_axolotl
from store.formats.jsonl import export_jsonl
from store.taxonomy import MaskPolicy

#: The dataset entry the README gives for the export.
DATASET = {"type": "chat_template", "field_messages": "messages", "message_field_training": "weight",
           "roles_to_train": ["assistant"], "train_on_eos": "turn"}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory) -> Store:
    """A scripted simulation with every kind of planted mistake, unparseable calls among them."""
    store = Store.open(tmp_path_factory.mktemp("sim") / "sim.db")
    config = SimConfig(toolset="everyday", n=12, seed=5, error_rate=0.6)
    asyncio.run(Simulation(store, config, policy=MaskPolicy.of()).run())
    yield store
    store.close()


def arguments_decode(row: dict[str, Any]) -> bool:
    """Axolotl's ``transform_message`` rule: every call's ``arguments`` string is JSON."""
    try:
        for message in row["messages"]:
            for call in message.get("tool_calls") or []:
                if isinstance(call["function"]["arguments"], str):
                    json.loads(call["function"]["arguments"])
    except json.JSONDecodeError:
        return False
    return True


def test_axolotl_is_an_export_format():
    assert EXPORTERS["axolotl"] is export_axolotl


def test_every_line_has_the_fields_axolotl_reads_with_their_types(sim_store, tmp_path):
    summary = export_axolotl(sim_store, tmp_path / "axolotl.jsonl", "all")
    rows = lines(tmp_path / "axolotl.jsonl")
    assert summary.trajectories == 12 and len(rows) == 12
    for row in rows:
        assert isinstance(row["id"], str) and isinstance(row["meta"], str)
        assert all(m["weight"] in (0, 1) for m in row["messages"] if m["role"] == "assistant")
        assert arguments_decode(row), row["id"]
        for tool in row["tools"]:
            assert tool["type"] == "function" and isinstance(tool["function"]["name"], str)
            assert isinstance(json.loads(tool["function"]["parameters"]), dict)


def test_unparseable_calls_are_kept_as_their_text_so_axolotl_can_read_them(sim_store, tmp_path):
    export_jsonl(sim_store, tmp_path / "plain.jsonl", "all")
    export_axolotl(sim_store, tmp_path / "axolotl.jsonl", "all")
    plain = {row["id"]: row for row in lines(tmp_path / "plain.jsonl")}
    broken = [i for i, row in plain.items() if not arguments_decode(row)]
    assert broken  # the canonical export is right to keep them; Axolotl would raise on these lines
    for row in lines(tmp_path / "axolotl.jsonl"):
        original = plain[row["id"]]
        for message, before in zip(row["messages"], original["messages"]):
            for call, was in zip(message.get("tool_calls") or [], before.get("tool_calls") or []):
                arguments = json.loads(call["function"]["arguments"])
                raw = was["function"]["arguments"]
                assert arguments == (raw if row["id"] in broken and isinstance(arguments, str) else json.loads(raw))


def test_derived_correction_examples_come_along_and_tools_share_one_arrow_schema(tmp_path):
    datasets = pytest.importorskip("datasets")
    with rich_store(tmp_path / "rich.db") as store:
        assert export_axolotl(store, tmp_path / "axolotl.jsonl", "all").examples == 1
    rows = lines(tmp_path / "axolotl.jsonl")
    assert [json.loads(r["meta"]).get("derived_from") for r in rows] == [None, "w1", None, None, None]
    assert rows[0]["messages"][2]["weight"] == 0 and rows[1]["messages"][-1]["weight"] == 1
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / "axolotl.jsonl"), split="train")
    assert len(loaded) == 5  # two toolsets, one schema
    assert [t["function"]["name"] for t in loaded[4]["tools"]] == ["getTime"]


def axolotl_strategy(dataset: dict[str, Any]):
    """Axolotl's own ``chat_template`` loader on curator's tiny tokenizer (chatml template, built offline)."""
    chat_template = pytest.importorskip("axolotl.prompt_strategies.chat_template")
    from axolotl.utils.dict import DictDefault
    from training.tiny import TinyConfig, build_tokenizer

    tokenizer = build_tokenizer(TinyConfig(template="chatml"))
    cfg = DictDefault({"sequence_len": 4096, "train_on_inputs": False})
    return tokenizer, chat_template.load(tokenizer, cfg, {**dataset, "chat_template": "tokenizer_default"})


def labeled_text(tokenizer, tokenized: dict[str, list[int]]) -> str:
    return tokenizer.decode([t for t, label in zip(tokenized["input_ids"], tokenized["labels"]) if label != -100])


@pytest.mark.slow  # importing axolotl alone takes ~3 s
def test_axolotl_masks_weight_0_and_trains_weight_1(tmp_path):
    datasets = pytest.importorskip("datasets")
    tokenizer, strategy = axolotl_strategy(DATASET)
    _, unweighted = axolotl_strategy({k: v for k, v in DATASET.items() if k != "message_field_training"})
    with Store.open(tmp_path / "w.db") as store:
        store.add_toolset(WEATHER)
        store.insert_trajectories([weather_trajectory("w", "Paris")])
        export_axolotl(store, tmp_path / "axolotl.jsonl", "all")
    row = datasets.load_dataset("json", data_files=str(tmp_path / "axolotl.jsonl"), split="train")[0]
    trained = labeled_text(tokenizer, strategy.tokenize_prompt(dict(row)))
    assert '"city": "Paris"' in trained and "sunny" in trained  # the weight-1 call and answer
    assert "town" not in trained  # the weight-0 call
    assert "town" in labeled_text(tokenizer, unweighted.tokenize_prompt(dict(row)))  # without the option it trains


@pytest.mark.slow
def test_axolotl_tokenizes_every_line_of_a_simulation(sim_store, tmp_path):
    datasets = pytest.importorskip("datasets")
    tokenizer, strategy = axolotl_strategy(DATASET)
    export_axolotl(sim_store, tmp_path / "axolotl.jsonl", "all")
    for row in datasets.load_dataset("json", data_files=str(tmp_path / "axolotl.jsonl"), split="train"):
        tokenized = strategy.tokenize_prompt(dict(row))
        assert len(tokenized["input_ids"]) == len(tokenized["labels"]) and labeled_text(tokenizer, tokenized)
