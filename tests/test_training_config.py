"""training/config.py: the one home of every training default, and the command lines built from it."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from curator.cli.training import COMMANDS
from curator.settings import TrainSettings
from store import Store
from training.__main__ import main as training_main
from training.config import (COMMANDS as CONFIGS, DPOConfig, GRPOConfig, SFTConfig, ArgumentError, BadValue, parse,
                             to_argv)

train = COMMANDS[0]


def test_every_default_is_the_dataclass_default() -> None:
    for name, config in CONFIGS.items():
        assert parse(name, []) == config(), name


def test_the_learning_rate_follows_the_algorithm_and_the_base_model_unless_given() -> None:
    assert (SFTConfig().learning_rate, SFTConfig(base_model="org/m").learning_rate) == (5e-3, 2e-4)
    assert (GRPOConfig().learning_rate, DPOConfig().learning_rate) == (1e-5, 5e-6)
    assert parse("sft", ["--lr", "1e-3", "--base-model", "org/m"]).learning_rate == 1e-3


def test_a_config_written_back_as_arguments_parses_to_itself() -> None:
    config = parse("sft", ["--no-mae", "--from-scratch", "--lora-r", "4", "--max-length", "512", "--w-max", "3"])
    settable = {f.name for f in fields(SFTConfig) if f.init}
    values = {k: v for k, v in config.to_dict().items() if k in settable and v is not None}
    assert parse("sft", to_argv(values)) == config
    assert (config.mae, config.full_finetune, config.lora_r, config.max_length) == (False, True, 4, 512)


@pytest.mark.parametrize("argv, problem, curator_says", [
    (["--lora-r", "0"], "--lora-r: must be at least 1", None),
    (["--w-max", "0.5"], "--w-max: must be at least 1", None),
    (["--max-steps", "-1", "--epochs", "0"], "--max-steps: give some epochs or a number of steps", None),
    (["--tiny-config", "{bad"], "--tiny-config: Expecting property name", None),
    (["--bogus"], "unrecognized arguments: --bogus", "No such option '--bogus'"),
])
def test_bad_options_are_one_line_before_anything_starts(tmp_path: Path, capsys, argv: list[str], problem: str,
                                                          curator_says: str | None) -> None:
    with pytest.raises(ArgumentError, match=problem.replace("{", r"\{")):
        parse("sft", argv)
    db = str(tmp_path / "c.db")
    Store.open(db).close()  # `curator train` refuses a store that does not exist, before reading its options
    assert training_main(["sft", "--db", db, *argv]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {problem}")
    result = CliRunner().invoke(train, ["sft", "--db", db, *argv], obj={"db": db})
    assert result.exit_code != 0 and (curator_says or problem) in result.output
    assert "Traceback" not in result.output and Store.open(db).runs() == []  # refused before a row or a process


def test_train_settings_pass_each_algorithm_only_its_own_fields() -> None:
    settings = TrainSettings("dpo", {"w_max": 3.0, "lora_r": 4, "beta": 0.2})
    assert settings.argv() == ["--lora-r", "4", "--beta", "0.2"]
    assert TrainSettings("sft", settings.overrides).argv() == ["--w-max", "3.0", "--lora-r", "4"]
    with pytest.raises(BadValue, match="lora-r"):
        TrainSettings("sft", {"lora_r": 0}).config()
