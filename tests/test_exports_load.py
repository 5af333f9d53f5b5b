"""Every training export loads, as written, in the library its users train with (datasets, TRL, OpenAI's
documented format), on a realistic export: 2,000 ``everyday`` trajectories with masked calls, corrections and
notes past the first blocks a JSON reader infers its schema from."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_helpers import everyday_store, export_lines, rich_store
from store.formats import export_hub, export_jsonl, export_openai, export_trl
from store.formats.trainer_files import NOT_JSON, NOTHING_TO_TRAIN

datasets = pytest.importorskip("datasets")

OPENAI_KEYS = {"system": {"role", "content"}, "user": {"role", "content"},
               "assistant": {"role", "content", "tool_calls", "weight"}, "tool": {"role", "tool_call_id", "content"}}


@pytest.fixture(scope="module")
def everyday(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("everyday") / "everyday.db"
    everyday_store(path).close()
    return path


def _store(path: Path):
    from store import Store

    return Store.open(path, create=False)


def test_a_small_jsonl_export_loads_even_when_corrections_notes_and_tools_first_appear_in_a_later_block(tmp_path):
    """A tiny reader block makes every line a block of its own: the shape of any line must fit the first's."""
    with rich_store(tmp_path / "rich.db") as store:
        export_jsonl(store, tmp_path / "all.jsonl", "all")
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    (tmp_path / "reversed.jsonl").write_text("\n".join(reversed(lines)) + "\n")  # plain lines first
    for name in ("all.jsonl", "reversed.jsonl"):
        loaded = datasets.load_dataset("json", data_files=str(tmp_path / name), split="train", chunksize=256)
        assert sorted(loaded["id"]) == sorted(r["id"] for r in export_lines(tmp_path / "all.jsonl"))
        assert set(loaded.column_names) == {"id", "messages", "tools", "meta"}


@pytest.mark.slow
def test_the_default_jsonl_of_a_realistic_store_loads_with_load_dataset_and_from_list(everyday, tmp_path):
    out = tmp_path / "train.jsonl"
    with _store(everyday) as store:
        summary = export_jsonl(store, out)
    assert summary.trajectories == 1800 and summary.examples > 0
    expected = export_lines(out)
    loaded = datasets.load_dataset("json", data_files=str(out), split="train")
    assert len(loaded) == len(expected) and loaded["id"] == [r["id"] for r in expected]
    row = loaded[len(loaded) - 1]
    assert json.loads(row["meta"]) == expected[-1]["meta"] and json.loads(row["tools"]) == expected[-1]["tools"]
    # each tool keeps exactly its own parameters (no union of every tool's properties padded with nulls)
    assert [t["function"]["parameters"] for t in json.loads(row["tools"])] == [
        t["function"]["parameters"] for t in expected[-1]["tools"]]
    # messages come back as written: masked calls at weight 0, no keys invented for the other roles
    weights = [m.get("weight") for m in row["messages"]]
    assert weights == [m.get("weight") for m in expected[-1]["messages"]]
    masked = sum(m.get("weight") == 0 for r in expected for m in r["messages"])
    assert masked > 0
    listed = datasets.Dataset.from_list([json.loads(line) for line in out.read_text().splitlines()])
    assert len(listed) == len(expected)


def assert_openai_lines(path: Path) -> list[dict]:
    """Every line holds only the keys OpenAI's fine-tuning format reads, with JSON arguments and something to
    train; returns the lines."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        assert set(line) <= {"messages", "tools", "parallel_tool_calls"}
        for message in line["messages"]:
            assert set(message) <= OPENAI_KEYS[message["role"]], message
            assert all(v is not None for v in message.values())
            for call in message.get("tool_calls") or ():
                json.loads(call["function"]["arguments"])
        assert line["messages"][-1]["role"] == "assistant" and any(m.get("weight") == 1 for m in line["messages"])
    return lines


@pytest.mark.slow
def test_the_openai_and_hub_exports_of_a_realistic_store(everyday, tmp_path):
    with _store(everyday) as store:
        openai = export_openai(store, tmp_path / "openai.jsonl")
        hub = export_hub(store, tmp_path / "hub")
        unreadable = sum(any(not _json(c["function"]["arguments"]) for m in r["messages"]
                             for c in m.get("tool_calls") or ()) for r in store.iter_records())
    lines = assert_openai_lines(tmp_path / "openai.jsonl")
    assert len(lines) == openai.trajectories + openai.examples and openai.left_out[NOT_JSON] == unreadable > 0
    assert any(m.get("weight") == 0 for line in lines for m in line["messages"])  # masked calls stay as context
    loaded = datasets.load_dataset(str(tmp_path / "hub"), split="train")
    assert len(loaded) == hub.trajectories + hub.examples == 1800 + hub.examples
    assert "| everyday | 1800 |" in (tmp_path / "hub" / "README.md").read_text()


def _json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def test_the_openai_export_has_only_the_keys_fine_tuning_reads_and_counts_what_it_leaves_out(tmp_path):
    out = tmp_path / "openai.jsonl"
    with rich_store(tmp_path / "rich.db") as store:
        store.decide("w3", "accept")
        bad = store.messages("w3")[2]
        bad.tool_calls[0]["function"]["arguments"] = '{"city": '  # what a model may emit
        store.conn.execute("UPDATE messages SET tool_calls = ? WHERE trajectory_id = 'w3' AND idx = 2",
                           (json.dumps(bad.tool_calls),))
        summary = export_openai(store, out)
    lines = assert_openai_lines(out)
    assert summary.left_out == {NOT_JSON: 1}
    assert "(1 left out: 1 a call's arguments are not JSON)" in summary.describe()
    assert len(lines) == summary.trajectories + summary.examples
    first = lines[0]
    assert [m.get("weight") for m in first["messages"] if m["role"] == "assistant"] == [0, 1, 1]  # corrected: 0
    assert first["tools"][0]["function"]["name"] == "getWeatherForecast"


def test_the_trl_export_makes_one_prompt_completion_example_per_trained_message(tmp_path):
    out = tmp_path / "trl.jsonl"
    with rich_store(tmp_path / "rich.db") as store:
        records = list(store.iter_records())
        summary = export_trl(store, out)
    examples = [json.loads(line) for line in out.read_text().splitlines()]
    trained = [(r["id"], i) for r in records for i, m in enumerate(r["messages"])
               if m["role"] == "assistant" and m["weight"] == 1]
    assert [e["id"] for e in examples] == [f"{rid}@{i}" for rid, i in trained]
    assert summary.completions == len(examples) and NOTHING_TO_TRAIN not in summary.left_out
    by_id = {r["id"]: r for r in records}
    for example in examples:
        rid, index = example["id"].rsplit("@", 1)
        source = by_id[rid]["messages"]
        assert [m["role"] for m in example["prompt"]] == [m["role"] for m in source[: int(index)]]
        assert example["completion"][0]["content"] == source[int(index)]["content"]
        assert "weight" not in json.dumps(example["prompt"] + example["completion"])
        assert json.loads(example["tools"]) == by_id[rid]["tools"]


@pytest.mark.slow
def test_trl_sft_trainer_trains_on_the_trl_export_and_learns_only_the_completions(everyday, tmp_path):
    from trl import SFTConfig, SFTTrainer

    from training import models

    out = tmp_path / "trl.jsonl"
    with _store(everyday) as store:
        summary = export_trl(store, out)
        records = [r for _, r in zip(range(200), store.iter_records())]
    assert summary.trajectories == 1800 and summary.completions > summary.trajectories
    loaded = datasets.load_dataset("json", data_files=str(out), split="train")
    model, tokenizer = models.load("tiny", records=records)
    config = SFTConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2, bf16=False,
                       use_cpu=True, report_to=[], max_length=4096, logging_steps=1, save_strategy="no")
    trainer = SFTTrainer(model=model, args=config, train_dataset=loaded.select(range(8)), processing_class=tokenizer)
    prepared = trainer.train_dataset[0]
    example = loaded[0]
    tools = json.loads(example["tools"])
    prompt = tokenizer.apply_chat_template(example["prompt"], tools=tools, add_generation_prompt=True,
                                           return_dict=False)
    full = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tools=tools, return_dict=False)
    trained = [t for t, label in zip(prepared["input_ids"], prepared["labels"]) if label != -100]
    assert prepared["input_ids"] == list(full) and trained == list(full)[len(prompt):]
    result = trainer.train()
    assert result.global_step == 2 and result.training_loss > 0


def test_the_hub_folder_loads_with_load_dataset_and_its_card_counts_what_it_holds(tmp_path, capsys):
    from data_helpers import run_cli

    db = tmp_path / "rich.db"
    rich_store(db).close()
    code, out, _ = run_cli(capsys, "--db", str(db), "export", str(tmp_path / "weather-calls"), "--format", "hub")
    assert code == 0 and "2 trajectories and 1 correction example" in out
    folder = tmp_path / "weather-calls"
    loaded = datasets.load_dataset(str(folder), split="train")
    assert loaded["id"] == ["w1", "w1#correction-2", "w2"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: default\n") and "path: data/train.jsonl" in card
    assert "| weather | 2 |" in card  # w1 and w2 (the correction example is not a trajectory)
    assert "| `content_error` | right tool and arguments, wrong values | yes | 1 | 0 |" in card
    trajectories = [r for r in export_lines(folder / "data" / "train.jsonl") if "derived_from" not in r["meta"]]
    weights = [m["weight"] for r in trajectories for m in r["messages"] if m["role"] == "assistant"]
    assert f"Assistant messages: {len(weights)}, of which {weights.count(0)} at weight 0." in card
    assert weights.count(0) >= 2  # at least w1's corrected call and w2's human mask
    assert "Every trajectory here was accepted by an annotator." in card
    code, _, err = run_cli(capsys, "--db", str(db), "export", str(folder / "README.md"), "--format", "hub")
    assert code != 0 and err.strip().endswith("is a file; the hub format writes a folder (data/ and README.md)")
