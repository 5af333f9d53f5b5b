"""GRPO and DPO on the tiny model, the error-type reward, and preference pairs from the store."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from store import Correction, Store, Toolset, Tool  # noqa: E402
from store.records import Message, Trajectory  # noqa: E402
from training import dpo, grpo  # noqa: E402
from training.config import GRPOConfig  # noqa: E402
from training.__main__ import main  # noqa: E402
from training.recorder import METRICS_FILE, RunRecorder  # noqa: E402
from training_fixtures import TOOLS, preference_records, records, write_jsonl, one_thread  # noqa: E402,F401 (one_thread: autouse)


def test_error_type_reward_uses_the_judge():
    gold = json.dumps([{"name": "getWeatherForecast", "arguments": json.dumps({"city": "Oslo"})}])
    tools = json.dumps(TOOLS)
    completions = [
        '<tool_call>\n{"name": "getWeatherForecast", "arguments": {"city": "Oslo"}}\n</tool_call>',
        '<tool_call>\n{"name": "getWeatherForecast", "arguments": {"city": "Lima"}}\n</tool_call>',
        '<tool_call>\n{"name": "getWeatherHistory", "arguments": {"city": "Oslo"}}\n</tool_call>',
        '<tool_call>\n{"name": "getMoonPhase", "arguments": {}}\n</tool_call>',
        "<tool_call>\n{not json\n</tool_call>",
        "I do not know.",
    ]
    rewards = grpo.error_type_reward(completions, [gold] * 6, [tools] * 6)
    assert rewards == [1.0, -0.25, -1.5, -2.0, -2.0, -2.0]


@pytest.mark.slow
def test_grpo_runs_and_saves_an_adapter(tmp_path: Path):
    data = write_jsonl(tmp_path / "d.jsonl", records(4))
    output = tmp_path / "grpo"
    options = GRPOConfig(data=str(data), output=str(output), max_steps=2, batch_size=4, num_generations=4,
                               max_completion_length=16)
    summary = grpo.train(options, RunRecorder(None, "train", "grpo", "tiny", {}, output))
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert (output / "adapter_model.safetensors").is_file()
    rows = [json.loads(line) for line in (output / METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["reward"] == -2.0 for r in rows)


def test_grpo_prompts_are_the_approved_call_steps():
    from training.data import Renderer
    from training.tiny import TinyConfig, build_tokenizer

    rows = grpo.prompts(records(3), Renderer.of(build_tokenizer(TinyConfig())))
    assert len(rows) == 3  # the masked failed call is not a prompt
    assert all(r["prompt"].endswith("<|im_start|>assistant\n") for r in rows)
    assert "town" not in "".join(r["gold"] for r in rows)


@pytest.mark.slow
def test_dpo_from_accepted_over_rejected_runs_and_saves_an_adapter(tmp_path: Path):
    data = write_jsonl(tmp_path / "d.jsonl", preference_records(3))
    pairs = dpo.collect_pairs(str(data), None)
    assert len(pairs) == 3 and all(p.source == "decision" for p in pairs)
    assert all(p.chosen["tool_calls"][0]["function"]["name"] != p.rejected["tool_calls"][0]["function"]["name"]
               for p in pairs)
    output = tmp_path / "dpo"
    db = str(tmp_path / "c.db")
    assert main(["dpo", "--data", str(data), "--db", db, "--output", str(output), "--max-steps", "2",
                 "--batch-size", "2"]) == 0
    assert (output / "adapter_model.safetensors").is_file()
    run = Store.open(db).runs()[0]
    assert (run.algorithm, run.status, run.dataset["pairs"]) == ("dpo", "completed", 3)


@pytest.mark.slow
def test_dpo_with_an_sft_weight_keeps_the_chosen_calls_more_likely(tmp_path: Path):
    """RPO (``--sft-weight``): TRL's DPO loss plus the chosen side's NLL; the same run without it lets the chosen
    calls' log-probability fall further (DPO only asks chosen to beat rejected)."""
    data = write_jsonl(tmp_path / "d.jsonl", preference_records(4))
    chosen = {}
    for weight in ("0", "1"):
        output = tmp_path / f"dpo-{weight}"
        assert main(["dpo", "--data", str(data), "--output", str(output), "--max-steps", "6", "--batch-size", "2",
                     "--lr", "5e-3", "--sft-weight", weight, "--seed", "0"]) == 0
        rows = [json.loads(line) for line in (output / METRICS_FILE).read_text().splitlines()]
        chosen[weight] = [r["logps/chosen"] for r in rows if "logps/chosen" in r]
    assert len(chosen["0"]) == len(chosen["1"]) == 6
    assert chosen["1"][0] == pytest.approx(chosen["0"][0], abs=1e-4)  # the same first step
    assert chosen["1"][-1] > chosen["0"][-1]


def test_dpo_pairs_from_store_corrections(tmp_path: Path):
    db = tmp_path / "c.db"
    store = Store.open(db)
    store.add_toolset(Toolset(name="weather", tools=[Tool.from_openai(t) for t in TOOLS]))
    record = records(1)[0]
    trajectory = Trajectory(id="t1", toolset="weather", instruction="weather in Perth", status="complete",
                            messages=[Message.from_openai(m) for m in record["messages"]])
    store.insert_trajectories([trajectory])
    store.decide("t1", "accept")
    fixed = [{"id": "c0", "type": "function",
              "function": {"name": "getWeatherForecast", "arguments": json.dumps({"city": "Perth"})}}]
    store.add_correction(Correction("t1", 2, fixed))
    pairs = dpo.collect_pairs(None, str(db))
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair.source == "correction" and len(pair.context) == 2 and pair.tools
    assert json.loads(pair.chosen["tool_calls"][0]["function"]["arguments"]) == {"city": "Perth"}
    assert "town" in pair.rejected["tool_calls"][0]["function"]["arguments"]


@pytest.mark.slow
def test_dpo_on_the_25_tool_everyday_store_fits_its_prompts_or_says_how_long_they_are(tmp_path: Path, capsys):
    import asyncio

    from curator.sim import SimConfig, Simulation
    from store.taxonomy import MaskPolicy

    db = str(tmp_path / "c.db")
    with Store.open(db) as store:
        asyncio.run(Simulation(store, SimConfig(toolset="everyday", n=2, seed=3), policy=MaskPolicy.of()).run())
        tid = store.trajectory_ids()[0]
        store.decide(tid, "accept")
        step = next(m for m in store.trajectory(tid).messages if m.role == "assistant" and m.tool_calls)
        fixed = json.loads(json.dumps(step.tool_calls))
        fixed[0]["function"]["arguments"] = json.dumps({**json.loads(fixed[0]["function"]["arguments"]), "x": 1})
        store.add_correction(Correction(tid, step.index, fixed, annotator="ann"))
    output = str(tmp_path / "dpo")
    # the prompt (25 tool schemas) is thousands of tokens: the default length follows the model's context
    assert main(["dpo", "--db", db, "--output", output, "--max-steps", "1", "--threads", "1"]) == 0
    run = Store.open(db).runs()[0]
    assert run.status == "completed" and run.dataset["correction_pairs"] == 1 and run.dataset["max_length"] == 4096
    capsys.readouterr()
    assert main(["dpo", "--db", db, "--output", output, "--max-steps", "1", "--max-length", "512"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: every preference pair is longer than --max-length 512: the longest prompt")
