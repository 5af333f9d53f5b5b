"""`curator train` / `eval` / `runs`: a subprocess per run, a run row per launch, no torch in the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from curator.cli.training import COMMANDS
from curator.launcher import training_command
from store import Store
from training_fixtures import records, write_jsonl

train, eval_, runs = COMMANDS


def new_store(tmp_path: Path) -> str:
    """An empty store: a run is recorded in a store, never makes one."""
    db = str(tmp_path / "c.db")
    Store.open(db).close()
    return db


def test_the_cli_module_does_not_import_torch():
    code = "import curator.cli.training, sys; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_training_command_uses_accelerate_when_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert training_command("sft", ["--x"])[:4] == [sys.executable, "-m", "training", "sft"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert training_command("dpo", [])[:4] == ["accelerate", "launch", "--module", "training"]
    cfg = tmp_path / "acc.yaml"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert training_command("sft", [], str(cfg))[2:4] == ["--config_file", str(cfg)]


@pytest.mark.slow
def test_train_sft_then_runs(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = write_jsonl(tmp_path / "d.jsonl", records(4))
    db = new_store(tmp_path)
    runner = CliRunner()
    result = runner.invoke(train, ["sft", "--db", db, "--data", str(data), "--max-steps", "2", "--output", "out",
                                   "--w-max", "1", "--threads", "1"], obj={"db": db})
    assert result.exit_code == 0, result.output
    [run] = Store.open(db).runs()
    assert run.status == "completed" and run.config["w_max"] == 1 and run.config["max_steps"] == 2
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    listed = runner.invoke(runs, ["--json"], obj={"db": db})
    assert json.loads(listed.output.splitlines()[0])["id"] == run.id
    table = runner.invoke(runs, [], obj={"db": db}).output
    assert run.id in table and "completed" in table and "loss" in table


@pytest.mark.slow
def test_bad_input_fails_the_run_with_one_line(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = new_store(tmp_path)
    result = CliRunner().invoke(eval_, ["--model", "tiny", "--data", str(tmp_path / "missing.jsonl")], obj={"db": db})
    assert result.exit_code == 2
    [run] = Store.open(db).runs()
    assert run.status == "failed" and "dataset not found" in run.error


@pytest.mark.slow
def test_curator_train_and_python_m_training_record_the_same_configuration(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_jsonl(tmp_path / "d.jsonl", records(4))
    db = new_store(tmp_path)
    args = ["--data", str(data), "--max-steps", "1", "--output", "out", "--threads", "1"]
    result = CliRunner().invoke(train, ["sft", "--db", db, *args], obj={"db": db})
    assert result.exit_code == 0, result.output
    subprocess.run([sys.executable, "-m", "training", "sft", "--db", db, *args], check=True, capture_output=True)
    second, first = Store.open(db).runs()
    assert first.status == second.status == "completed"
    assert first.config == second.config
    assert (first.config["learning_rate"], first.config["lora_r"], first.config["max_length"]) == (5e-3, 16, None)
