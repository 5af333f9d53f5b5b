"""Several processes: two-process DDP on CPU against one process, the accelerate configs, FSDP's units, vLLM."""
from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from curator import launcher  # noqa: E402
from store import Store  # noqa: E402
from training import distributed, grpo, models  # noqa: E402
from training.__main__ import main  # noqa: E402
from training.config import GRPOConfig, SFTConfig  # noqa: E402
from training.recorder import METRICS_FILE  # noqa: E402
from training_fixtures import records, write_jsonl, one_thread  # noqa: E402,F401 (one_thread: autouse)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "accelerate"
STEPS = 4
#: The two runs add the same per-token terms in another order (two partial sums gathered, against one sum) in
#: float32: their losses differ by a few ulps (4.8e-7 on 6.35 measured). One example more or less in a step, or a
#: gradient scaled by the number of processes, moves the loss of the next step by 1e-3 to 1e-2.
LOSS_RTOL = 1e-5


def torchrun(algorithm: str, args: list[str], accelerate_config: str | None = None) -> list[str]:
    """The launcher's command for two CPU processes (gloo), where a GPU machine gets ``accelerate launch``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "training", algorithm, *args]


@pytest.mark.slow
def test_two_processes_train_as_one_on_the_same_global_batch(tmp_path: Path):
    """2 processes x batch 2 give the loss curve of 1 process x batch 4; only the main one writes the run."""
    data = write_jsonl(tmp_path / "data.jsonl", records(16))
    db = str(tmp_path / "c.db")
    same = ["--data", str(data), "--db", db, "--max-steps", str(STEPS), "--lora-dropout", "0", "--threads", "1"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["sft", *same, "--output", str(one), "--batch-size", "4"]) == 0
    done = subprocess.run(torchrun("sft", [*same, "--output", str(two), "--batch-size", "2"]), cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    store = Store.open(db)
    (launched,) = [r for r in store.runs() if r.output_dir == str(two)]  # not one row per process
    (alone,) = [r for r in store.runs() if r.output_dir == str(one)]
    assert launched.status == "completed" and launched.summary["steps"] == STEPS
    assert launched.dataset["trajectories"] == 16
    curve = store.run_metrics(launched.id, "loss")
    assert [step for step, _ in curve] == list(range(1, STEPS + 1)), "a step's metrics recorded twice or missed"
    assert len((two / METRICS_FILE).read_text().splitlines()) == STEPS
    baseline = [loss for _, loss in store.run_metrics(alone.id, "loss")]
    assert [loss for _, loss in curve] == pytest.approx(baseline, rel=LOSS_RTOL)

    assert (two / "adapter_model.safetensors").is_file() and (two / "base" / "tokenizer.json").is_file()
    assert not (two / distributed.ENCODED_FILE).exists()
    assert "find_unused_parameters=True" not in done.stderr  # torch's warning: DDP looked for unused weights


def test_a_launched_process_knows_whether_it_is_the_main_one():
    assert distributed.is_main_process({}) and distributed.is_main_process({"RANK": "0", "WORLD_SIZE": "2"})
    assert not distributed.is_main_process({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})


def test_ddp_looks_for_unused_parameters_only_in_a_full_fine_tune_of_a_model_it_does_not_know(tmp_path: Path):
    from training.outline import shared_arguments

    def unused(**fields):
        return shared_arguments(SFTConfig(output=str(tmp_path), **fields))["ddp_find_unused_parameters"]

    assert unused() is False and unused(base_model="some/model") is False
    assert unused(full_finetune=True) is False
    assert unused(full_finetune=True, base_model="some/model") is None
    assert shared_arguments(GRPOConfig(output=str(tmp_path)))["ddp_find_unused_parameters"] is False


def test_the_encoded_examples_read_back_are_the_ones_written(tmp_path: Path):
    """What the other processes train on: the main process's arrays, and the records it kept."""
    from training.data import Encoder

    rows = records(6)
    for message in rows[2]["messages"]:
        message["weight"] = 0  # nothing of it trains: left out
    encoder = Encoder(models.load_tokenizer("tiny", SFTConfig().tiny, rows), max_length=512)
    kept, examples = encoder.encode_all(rows)
    distributed._write(tmp_path / "e.npz", [rows.index(r) for r in kept], examples)
    at, read = distributed._read(tmp_path / "e.npz")
    assert [rows[i]["id"] for i in at] == [r["id"] for r in kept] and "t2" not in [e.id for e in read]
    for a, b in zip(examples, read, strict=True):
        assert a.id == b.id and a.trainable == b.trainable
        for name in ("input_ids", "labels", "weights"):
            assert getattr(b, name).dtype == getattr(a, name).dtype
            assert getattr(b, name).tolist() == getattr(a, name).tolist()
    distributed._write(tmp_path / "e.npz", error="no trainable token: every assistant message is masked")
    with pytest.raises(distributed.TrainingError, match="every assistant message is masked"):
        distributed._read(tmp_path / "e.npz")


def test_dpo_arguments_made_before_the_weights_read_an_adapters_context_from_its_base(tmp_path: Path):
    """DPO's max_length comes before the model now: for an SFT adapter it is its base model's context."""
    from peft import LoraConfig, get_peft_model
    from training.config import DPOConfig
    from training.dpo import DPORun

    tiny = SFTConfig(tiny_config='{"max_position_embeddings": 1536}').tiny
    model, tokenizer = models.load("tiny", tiny)
    models.save_tiny_base(model, tokenizer, tmp_path / "sft", tiny)
    adapter = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    adapter.peft_config["default"].base_model_name_or_path = models.BASE_DIR
    adapter.save_pretrained(tmp_path / "sft")
    config = DPOConfig(base_model=str(tmp_path / "sft"), output=str(tmp_path / "dpo"))
    assert DPORun(config, None).arguments().max_length == 1536


# -- the accelerate configs --------------------------------------------------------------------------------
def launched_env(config: Path, monkeypatch) -> dict[str, str]:
    """The environment ``accelerate launch --config_file config -m training sft`` gives its processes.

    accelerate's own parser and launch command run; only the final spawn is replaced (no GPU, no deepspeed here).
    """
    from accelerate.commands import launch
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    seen = {}
    for name in ("multi_gpu_launcher", "deepspeed_launcher", "simple_launcher"):
        monkeypatch.setattr(launch, name, functools.partial(seen.setdefault, "args"))
    args = launch.launch_command_parser().parse_args(["--config_file", str(config), "-m", "training", "sft"])
    launch.launch_command(args)
    launched = seen["args"]
    assert (launched.module, launched.training_script, launched.training_script_args) == (True, "training", ["sft"])
    return prepare_deepspeed_cmd_env(launched)[1] if launched.use_deepspeed else prepare_multi_gpu_env(launched)


@pytest.mark.parametrize("name, expected", [
    ("ddp", {"ACCELERATE_MIXED_PRECISION": "no"}),
    ("fsdp", {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1", "FSDP_USE_ORIG_PARAMS": "false",
              "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP", "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
              "FSDP_CPU_RAM_EFFICIENT_LOADING": "true", "FSDP_SYNC_MODULE_STATES": "true",
              "ACCELERATE_MIXED_PRECISION": "no"}),
    ("deepspeed_zero2", {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2",
                         "ACCELERATE_DEEPSPEED_ZERO3_INIT": "false", "ACCELERATE_MIXED_PRECISION": "no"}),
    ("deepspeed_zero3", {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
                         "ACCELERATE_DEEPSPEED_ZERO3_INIT": "true", "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": "true",
                         "ACCELERATE_MIXED_PRECISION": "no"}),
])
def test_each_accelerate_config_launches_what_it_says(name: str, expected: dict[str, str], monkeypatch):
    """accelerate's loader reads the file, and its launch command turns it into the processes' environment."""
    from accelerate.commands.config.config_args import load_config_from_file

    path = CONFIGS / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert config.num_machines == 1 and config.use_cpu is False
    env = launched_env(path, monkeypatch)
    assert {k: env.get(k) for k in expected} == expected
    if name == "ddp":
        assert "ACCELERATE_USE_FSDP" not in env and "ACCELERATE_USE_DEEPSPEED" not in env
    # no batch size, accumulation or clipping of the config's own: the training's arguments decide ("auto")
    assert "ACCELERATE_GRADIENT_ACCUMULATION_STEPS" not in env and "ACCELERATE_GRADIENT_CLIPPING" not in env


def test_the_readme_gives_the_command_of_each_accelerate_config():
    readme = (REPO / "README.md").read_text()
    named = set(re.findall(r"accelerate launch --config_file accelerate/(\w+)\.yaml -m training sft", readme))
    assert named == {p.stem for p in CONFIGS.glob("*.yaml")}


def test_fsdp_units_of_a_lora_model_have_one_dtype_with_the_trainers_peft_policy(tmp_path: Path):
    """FSDP with use_orig_params=False flattens each unit into one tensor: one dtype, one requires_grad.

    A bf16 base with fp32 LoRA matrices (PEFT's autocast) breaks a unit that holds both, as the decoder-layer
    policy alone makes them; the Trainer replaces it for a PEFT model with PEFT's (each LoRA matrix a unit of
    its own), and with that the same model wraps.
    """
    import torch.distributed as dist
    from peft.utils.other import fsdp_auto_wrap_policy
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    def lora_on_bf16():
        model, _ = models.load("tiny", SFTConfig().tiny)
        model = models.wrap_lora(model.to(torch.bfloat16), SFTConfig())
        trained = {p.dtype for p in model.parameters() if p.requires_grad}
        frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
        assert (trained, frozen) == ({torch.float32}, {torch.bfloat16})
        return model

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
    try:
        layers_only = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={LlamaDecoderLayer})
        with pytest.raises(ValueError, match="uniform dtype"):
            FullyShardedDataParallel(lora_on_bf16(), auto_wrap_policy=layers_only, device_id=torch.device("cpu"),
                                     use_orig_params=False)
        model = lora_on_bf16()
        FullyShardedDataParallel(model, auto_wrap_policy=fsdp_auto_wrap_policy(model), device_id=torch.device("cpu"),
                                 use_orig_params=False)
    finally:
        dist.destroy_process_group()


# -- GRPO with vLLM --------------------------------------------------------------------------------------
def test_use_vllm_sets_trls_vllm_generation_when_vllm_is_installed(tmp_path: Path):
    asked = GRPOConfig(output=str(tmp_path), use_vllm=True, vllm_mode="server", vllm_server_url="http://gpu:8000")
    args = grpo.trainer_arguments(asked, vllm_installed=True)
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_base_url) == (True, "server", "http://gpu:8000")
    args = grpo.trainer_arguments(GRPOConfig(output=str(tmp_path), use_vllm=True), vllm_installed=True)
    assert (args.use_vllm, args.vllm_mode) == (True, "colocate")
    assert grpo.trainer_arguments(GRPOConfig(output=str(tmp_path)), vllm_installed=False).use_vllm is False


@pytest.mark.skipif(grpo.is_vllm_available(), reason="vllm is installed here")
def test_use_vllm_without_vllm_is_one_line_and_a_failed_run(tmp_path: Path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", records(2))
    db = str(tmp_path / "c.db")
    capsys.readouterr()
    code = main(["grpo", "--data", str(data), "--db", db, "--output", str(tmp_path / "o"), "--use-vllm"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --use-vllm: vllm is not installed")
    run = Store.open(db).runs()[0]
    assert run.status == "failed" and "vllm is not installed" in run.error
    assert not (tmp_path / "o" / "base").exists()  # stopped before any model was built


@pytest.mark.parametrize("argv, message", [
    (["--vllm-mode", "remote"], "--vllm-mode: must be one of colocate, server, got 'remote'"),
    (["--vllm-server-url", "http://gpu:8000"], "--vllm-server-url: is for --vllm-mode server"),
])
def test_bad_vllm_options_are_one_line(argv: list[str], message: str, capsys):
    assert main(["grpo", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


@pytest.mark.slow
def test_cancelling_a_two_process_run_stops_both_at_the_same_step(tmp_path: Path, monkeypatch):
    """The run's row holds the main process's pid: its SIGTERM alone stops every process, with a checkpoint."""
    data = write_jsonl(tmp_path / "data.jsonl", records(16))
    db = str(tmp_path / "c.db")
    Store.open(db).close()
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setattr(launcher, "training_command", torchrun)
    output = tmp_path / "run"
    run_id, proc = launcher.start_run(db, "train", "sft", ["--data", str(data), "--max-steps", "100000",
                                                           "--save-steps", "100000", "--threads", "1"],
                                      str(output), detach=True)
    deadline = time.time() + 180
    while not (output / METRICS_FILE).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (output / METRICS_FILE).exists(), (output / launcher.LOG_FILE).read_text()[-3000:]
    launcher.cancel_run(db, run_id)
    assert proc.wait(timeout=120) == 0, (output / launcher.LOG_FILE).read_text()[-3000:]
    run = Store.open(db).run(run_id)
    assert run.status == "cancelled" and run.summary["steps"] >= 1
    assert list(output.glob("checkpoint-*")) and (output / "adapter_model.safetensors").is_file()
