"""SFT on the tiny model: the weighted loss, its exactness, masking, runs, errors, resume and SIGTERM."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from store import Store  # noqa: E402
from training import sft  # noqa: E402
from training.config import SFTConfig  # noqa: E402
from training.__main__ import main  # noqa: E402
from training.data import Encoder  # noqa: E402
from training.loss import weighted_ce  # noqa: E402
from training.recorder import METRICS_FILE, RunRecorder  # noqa: E402
from training.tiny import TinyConfig, build  # noqa: E402
from training_fixtures import assistant_call, records, trajectory, write_jsonl, one_thread  # noqa: E402,F401 (one_thread: autouse)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data.jsonl", records(16))


def losses(output: Path) -> list[float]:
    return [row["loss"] for row in map(json.loads, (output / METRICS_FILE).read_text().splitlines()) if "loss" in row]


@pytest.mark.slow
def test_lora_sft_loss_falls_over_30_steps(data: Path, tmp_path: Path):
    output = tmp_path / "out"
    config = SFTConfig(data=str(data), output=str(output), max_steps=30, learning_rate=1e-2, save_steps=1000)
    summary = sft.train(config, RunRecorder(None, "train", "sft", "tiny", config.to_dict(), output))
    assert summary["status"] == "completed" and summary["steps"] == 30
    curve = losses(output)
    assert len(curve) == 30
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5 - 0.3
    assert (output / "adapter_model.safetensors").is_file() and (output / "tokenizer.json").is_file()
    assert (output / "base" / "config.json").is_file()
    assert json.loads((output / "adapter_config.json").read_text())["base_model_name_or_path"] == "base"


def _batch(model_tokenizer, rows, **encoder):
    model, tok = model_tokenizer
    examples = [Encoder(tok, **encoder).encode(r) for r in rows]
    return sft.Collator(tok.pad_token_id)(examples)


def _loss_and_grads(model, batch):
    model.zero_grad()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    loss = weighted_ce(model, inputs, batch["labels"], batch["weights"])[0] / batch["weights"][:, 1:].sum()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def _ends_with_failed_call(call_arguments: dict) -> dict:
    """A conversation whose last assistant message is a masked (weight 0) call."""
    record = trajectory(0, "Oslo", "forecast")
    record["messages"].append({"role": "user", "content": "And tomorrow?"})
    record["messages"].append(assistant_call("getWeatherForecast", call_arguments, weight=0, call_id="z"))
    return record


def test_masked_message_contributes_exactly_nothing():
    model, tok = build(TinyConfig(seed=3))
    a = _batch((model, tok), [_ends_with_failed_call({"town": "Oslo"})])
    same_length = _batch((model, tok), [_ends_with_failed_call({"towm": "Osla"})])
    longer = _batch((model, tok), [_ends_with_failed_call({"village": "Bergen upon the sea", "days": "many"})])
    assert a["input_ids"].shape == same_length["input_ids"].shape
    assert not torch.equal(a["input_ids"], same_length["input_ids"])
    loss_a, grads_a = _loss_and_grads(model, a)
    loss_b, grads_b = _loss_and_grads(model, same_length)
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(x, y) for x, y in zip(grads_a, grads_b))
    # a longer message changes the kernels' shapes, so only float rounding may differ
    loss_c, grads_c = _loss_and_grads(model, longer)
    assert torch.equal(loss_a, loss_c)
    for x, y in zip(grads_a, grads_c):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
    # without MAE the same change does move the loss
    loss_d, _ = _loss_and_grads(model, _batch((model, tok), [_ends_with_failed_call({"town": "Oslo"})], mae=False))
    loss_e, _ = _loss_and_grads(model, _batch((model, tok), [_ends_with_failed_call({"towm": "Osla"})], mae=False))
    assert not torch.equal(loss_d, loss_e)


def _one_sgd_step(model_tokenizer, rows, batch_size: int, grad_accum: int, tmp_path: Path):
    model, tok = copy.deepcopy(model_tokenizer[0]), model_tokenizer[1]
    examples = [Encoder(tok).encode(r) for r in rows]
    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path / f"ga{grad_accum}"),
        max_steps=1,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=1.0,
        lr_scheduler_type="constant",
        optim="sgd",
        max_grad_norm=0,
        weight_decay=0.0,
        report_to=[],
        remove_unused_columns=False,
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = sft.WeightedLossTrainer(
        model=model, args=args, train_dataset=sft.ExampleDataset(examples), data_collator=sft.Collator(tok.pad_token_id)
    )
    loss = trainer.train().training_loss
    return loss, [p.detach().clone() for p in model.parameters()]


def test_weighted_loss_is_exact_under_gradient_accumulation(tmp_path: Path):
    """One step on 4 examples at once equals 4 accumulated micro-batches of 1 (different lengths and weights)."""
    pair = build(TinyConfig(seed=1))
    rows = [records(4, extra_turns=k)[k] for k in range(4)]
    loss_full, params_full = _one_sgd_step(pair, rows, 4, 1, tmp_path)
    loss_acc, params_acc = _one_sgd_step(pair, rows, 1, 4, tmp_path)
    assert loss_acc == pytest.approx(loss_full, rel=1e-5)
    for a, b in zip(params_full, params_acc):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # the loss is Σ w·CE / Σ w over the whole batch, computed by hand
    model, tok = pair
    batch = _batch(pair, rows)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1), reduction="none", ignore_index=-100
    )
    w = batch["weights"][:, 1:].reshape(-1)
    assert loss_full == pytest.approx(float((w * ce).sum().detach() / w.sum()), rel=1e-5)


@pytest.mark.slow
def test_cli_sft_from_scratch_with_ablation_flags_records_the_run(data: Path, tmp_path: Path):
    db = str(tmp_path / "c.db")
    output = tmp_path / "scratch"
    argv = ["sft", "--data", str(data), "--db", db, "--output", str(output), "--max-steps", "2",
            "--from-scratch", "--no-mae", "--w-max", "1", "--curriculum", "--tiny-config", '{"hidden_size": 32}']
    assert main(argv) == 0
    run = Store.open(db).runs()[0]
    assert (run.kind, run.algorithm, run.status) == ("train", "sft", "completed")
    assert run.config["mae"] is False and run.config["w_max"] == 1 and run.config["full_finetune"] is True
    assert run.dataset["trajectories"] == 16 and run.summary["steps"] == 2
    assert [s for s, _ in Store.open(db).run_metrics(run.id, "loss")] == [1, 2]
    assert (output / "model.safetensors").is_file() and not (output / "adapter_config.json").exists()
    assert json.loads((output / "config.json").read_text())["hidden_size"] == 32


@pytest.mark.parametrize(
    "argv_extra, rows, message",
    [
        (["--base-model", "/no/such/model"], None, "model not found: /no/such/model"),
        ([], [], "the dataset is empty"),
        ([], "masked", "no trainable token: every assistant message is masked"),
        (["--max-length", "8"], None, "no trainable token within --max-length 8"),
        (["--base-model", "tiny-tokenizer-without-template"], None, "has no chat template"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_failed_run(tmp_path, capsys, argv_extra, rows, message):
    if rows == "masked":
        rows = records(2)
        for r in rows:
            for m in r["messages"]:
                if m["role"] == "assistant":
                    m["weight"] = 0
    data = write_jsonl(tmp_path / "d.jsonl", records(2) if rows is None else rows)
    if "tiny-tokenizer-without-template" in argv_extra:
        model, tok = build()
        tok.chat_template = None
        model.save_pretrained(tmp_path / "plain-model")
        tok.save_pretrained(tmp_path / "plain-model")
        (tmp_path / "plain-model" / "chat_template.jinja").unlink(missing_ok=True)
        argv_extra = ["--base-model", str(tmp_path / "plain-model")]
    db = str(tmp_path / "c.db")
    capsys.readouterr()
    assert main(["sft", "--data", str(data), "--db", db, "--output", str(tmp_path / "o"), *argv_extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    run = Store.open(db).runs()[0]
    assert run.status == "failed" and message in run.error


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(data: Path, tmp_path: Path):
    output = tmp_path / "out"
    first = SFTConfig(data=str(data), output=str(output), max_steps=2, save_steps=2)
    sft.train(first, RunRecorder(None, "train", "sft", "tiny", {}, output))
    again = SFTConfig(data=str(data), output=str(output), max_steps=4, save_steps=2, resume=True)
    summary = sft.train(again, RunRecorder(None, "train", "sft", "tiny", {}, output))
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["steps"] == 4
    assert [json.loads(l)["step"] for l in (output / METRICS_FILE).read_text().splitlines()] == [1, 2, 3, 4]


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_a_checkpoint(data: Path, tmp_path: Path):
    db = str(tmp_path / "c.db")
    output = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "sft", "--data", str(data), "--db", db, "--output", str(output),
         "--max-steps", "100000", "--save-steps", "100000", "--threads", "1"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 120
    while not (output / METRICS_FILE).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (output / METRICS_FILE).exists(), proc.stderr.read() if proc.poll() is not None else "no step in time"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    checkpoints = list(output.glob("checkpoint-*"))
    assert checkpoints and (output / "adapter_model.safetensors").is_file()
    run = Store.open(db).runs()[0]
    assert run.status == "cancelled" and run.pid == proc.pid
