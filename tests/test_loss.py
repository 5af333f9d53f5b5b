"""The chunked weighted loss against the full-logits formula, gradient checkpointing, and the precision choice."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM  # noqa: E402

from training import loss, models, sft  # noqa: E402
from training.config import SFTConfig, parse  # noqa: E402
from training.data import Encoder  # noqa: E402
from training.recorder import METRICS_FILE, RunRecorder  # noqa: E402
from training.tiny import TinyConfig, build  # noqa: E402
from training_fixtures import records, write_jsonl, one_thread  # noqa: E402,F401 (one_thread: autouse)


@pytest.fixture(scope="module")
def pair():
    return build(TinyConfig(seed=2))


@pytest.fixture(scope="module")
def batch(pair):
    """Four trajectories of different lengths (padding), with masked failed calls (MAE) and PKT weights."""
    model, tok = pair
    rows = [records(4, extra_turns=k)[k] for k in range(4)]
    out = sft.Collator(tok.pad_token_id)([Encoder(tok).encode(r) for r in rows])
    weights = out["weights"]
    assert len(set(weights[weights > 0].tolist())) > 1, "the batch must weigh its tokens unevenly"
    assert (out["attention_mask"] == 0).any(), "the batch must have padding"
    return out


def inputs_of(batch) -> dict:
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def full_logits_sum(model, batch):
    """The formula the trainer used before: every position's logits, upcast, times its weight."""
    logits = model(**inputs_of(batch)).logits
    return loss.weighted_ce_sum(logits, batch["labels"], batch["weights"])


def chunked_sum(model, batch, chunk: int = loss.CHUNK_TOKENS):
    return loss.weighted_ce(model, inputs_of(batch), batch["labels"], batch["weights"], chunk=chunk)[0]


def with_grads(model, compute):
    model.zero_grad()
    value = compute()
    value.backward()
    return value.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def assert_same_loss_and_grads(model, batch, chunk: int = loss.CHUNK_TOKENS):
    expected, expected_grads = with_grads(model, lambda: full_logits_sum(model, batch))
    got, got_grads = with_grads(model, lambda: chunked_sum(model, batch, chunk))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert expected_grads.keys() == got_grads.keys() and expected_grads
    for name, grad in expected_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("chunk", [61, loss.CHUNK_TOKENS])
def test_chunked_loss_and_gradients_equal_the_full_logits(pair, batch, chunk):
    model = copy.deepcopy(pair[0])
    assert loss.describe(model) == f"chunked ({loss.CHUNK_TOKENS} tokens)"
    assert_same_loss_and_grads(model, batch, chunk)


def test_chunked_loss_and_gradients_equal_the_full_logits_under_lora(pair, batch):
    model = models.wrap_lora(copy.deepcopy(pair[0]), SFTConfig()).eval()  # no LoRA dropout: both passes alike
    for name, parameter in model.named_parameters():  # fresh B matrices are zero: make every adapter count
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    assert loss.describe(model).startswith("chunked")
    assert_same_loss_and_grads(model, batch, chunk=61)


def test_the_chunked_path_computes_no_logits_and_the_weight_0_positions_are_skipped(pair, batch):
    model = pair[0]
    shapes: list[tuple[int, ...]] = []
    handle = model.get_output_embeddings().register_forward_hook(lambda m, a, out: shapes.append(tuple(out.shape)))
    try:
        _, outputs = loss.weighted_ce(model, inputs_of(batch), batch["labels"], batch["weights"], chunk=16)
    finally:
        handle.remove()
    weighted = int((batch["weights"][:, 1:] > 0).sum())
    assert outputs.logits.shape[0] == 0
    vocabulary = model.config.vocab_size
    # the model's own call keeps no position; then the weighted positions, 16 at a time
    assert shapes[0] == (0, vocabulary)
    assert sum(s[0] for s in shapes[1:]) == weighted < batch["input_ids"].numel() / 2
    assert max(s[0] for s in shapes[1:]) == 16


def test_a_batch_where_nothing_weighs_has_zero_loss_and_zero_gradients(pair, batch):
    model = copy.deepcopy(pair[0])
    silent = {**batch, "weights": torch.zeros_like(batch["weights"])}
    value, grads = with_grads(model, lambda: chunked_sum(model, silent))
    assert value.item() == 0.0
    assert all(not g.any() for g in grads.values())


# -- every listed head against the model's own logits -------------------------------------------------------
SMALL = {"vocab_size": 96, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
         "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
         "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
MOE = {"num_experts": 4, "num_local_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
       "shared_expert_intermediate_size": 16}
#: model type -> config fields that make its logit transform bite on a tiny random model
MODEL_TYPES = {
    "llama": {}, "mistral": {}, "ministral": {}, "qwen2": {}, "qwen3": {}, "phi": {}, "phi3": {}, "gemma": {}, "smollm3": {}, "olmo2": {}, "starcoder2": {},
    "glm4": {}, "exaone4": {}, "qwen2_moe": MOE, "qwen3_moe": MOE, "mixtral": MOE,
    "gemma2": {"final_logit_softcapping": 0.05}, "gemma3_text": {"final_logit_softcapping": 0.05},
    "cohere": {"logit_scale": 3.0}, "cohere2": {"logit_scale": 3.0}, "granite": {"logits_scaling": 0.25},
}


def tiny_of_type(model_type: str):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **SMALL, **MODEL_TYPES[model_type]))


def test_every_listed_head_is_tested():
    assert {type(tiny_of_type(t)).__name__ for t in MODEL_TYPES} == set(loss.HEADS)


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_each_listed_model_type_gives_the_loss_of_its_own_logits(model_type, batch, monkeypatch):
    model = tiny_of_type(model_type)
    short = {name: value[:2, :int(batch["attention_mask"][1].sum())] for name, value in batch.items()}  # 1st padded
    vocabulary = SMALL["vocab_size"]
    small = {**short, "input_ids": short["input_ids"] % vocabulary,
             "labels": torch.where(short["labels"] >= 0, short["labels"] % vocabulary, short["labels"])}
    assert_same_loss_and_grads(model, small, chunk=32)
    if loss.HEADS[type(model).__name__] is not loss._as_is:
        # the transform is what makes it exact: without it the loss is another
        monkeypatch.setitem(loss.HEADS, type(model).__name__, loss._as_is)
        assert abs(chunked_sum(model, small).item() - full_logits_sum(model, small).item()) > 1e-3


class DoubledLogits(LlamaForCausalLM):
    """A model that does more after its head than the chunked path knows of."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = out.logits * 2
        return out


def test_a_model_class_not_listed_takes_the_full_logits_and_stays_exact(pair, batch):
    model = DoubledLogits(pair[0].config)
    model.load_state_dict(pair[0].state_dict())
    assert loss.describe(model).startswith("full logits (DoubledLogits is not")
    assert_same_loss_and_grads(model, batch)
    _, outputs = loss.weighted_ce(model, inputs_of(batch), batch["labels"], batch["weights"])
    assert outputs.logits.shape[:2] == batch["input_ids"].shape


# -- gradient checkpointing ----------------------------------------------------------------------------------
def _run(tmp_path: Path, name: str, **overrides) -> tuple[list[float], int]:
    """A short SFT run's loss curve, and the bytes its steps kept for the backward passes."""
    output = tmp_path / name
    config = SFTConfig(data=str(write_jsonl(tmp_path / "data.jsonl", records(8))), output=str(output),
                       max_steps=4, batch_size=2, save_steps=1000, **overrides)
    kept = []

    def pack(tensor):
        kept.append(tensor.nbytes)
        return tensor

    torch.manual_seed(0)  # the fresh LoRA adapters draw from the global generator before the trainer seeds it
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        summary = sft.train(config, RunRecorder(None, "train", "sft", "tiny", config.to_dict(), output))
    assert summary["status"] == "completed"
    rows = map(json.loads, (output / METRICS_FILE).read_text().splitlines())
    return [row["loss"] for row in rows if "loss" in row], sum(kept)


@pytest.mark.slow
@pytest.mark.parametrize("full_finetune", [False, True], ids=["lora", "full"])
def test_gradient_checkpointing_recomputes_and_gives_the_same_loss_curve(tmp_path, capsys, full_finetune):
    off, kept_off = _run(tmp_path, "off", full_finetune=full_finetune)
    assert "precision: fp32 on cpu, gradient checkpointing off, loss: chunked (1024 tokens)" in capsys.readouterr().err
    on, kept_on = _run(tmp_path, "on", full_finetune=full_finetune, gradient_checkpointing=True)
    assert "precision: fp32 on cpu, gradient checkpointing on, loss: chunked (1024 tokens)" in capsys.readouterr().err
    assert kept_on < kept_off / 3  # the layers' activations are recomputed in the backward, not kept
    assert len(on) == len(off) == 4 and off[-1] < off[0]  # it trains
    assert on == pytest.approx(off, rel=1e-5)


def test_gradient_checkpointing_defaults_and_flags():
    assert SFTConfig().gradient_checkpointing is False
    assert SFTConfig(base_model="demo").gradient_checkpointing is False
    hub = SFTConfig(base_model="Qwen/Qwen2.5-0.5B-Instruct")
    assert hub.gradient_checkpointing is None
    gpu, cpu = models.choose_precision(True, True), models.choose_precision(False, False)
    assert models.gradient_checkpointing(hub.gradient_checkpointing, gpu) is True
    assert models.gradient_checkpointing(hub.gradient_checkpointing, cpu) is False
    assert models.gradient_checkpointing(False, gpu) is False and models.gradient_checkpointing(True, cpu) is True
    assert parse("sft", ["--gradient-checkpointing"]).gradient_checkpointing is True
    assert parse("sft", ["--base-model", "/models/qwen", "--no-gradient-checkpointing"]).gradient_checkpointing is False


# -- precision -------------------------------------------------------------------------------------------------
def test_precision_follows_the_hardware():
    cpu = models.choose_precision(cuda=False, bf16=False)
    assert (cpu.device, cpu.dtype, cpu.describe()) == ("cpu", "float32", "fp32 on cpu")
    assert cpu.arguments() == {"bf16": False, "fp16": False, "use_cpu": True}
    a10 = models.choose_precision(cuda=True, bf16=True, gpu="cuda:0 (NVIDIA A10G)")
    assert (a10.device, a10.dtype, a10.describe()) == ("cuda", "bfloat16", "bf16 on cuda:0 (NVIDIA A10G)")
    assert a10.arguments() == {"bf16": True, "fp16": False, "use_cpu": False}
    t4 = models.choose_precision(cuda=True, bf16=False, gpu="cuda:0 (Tesla T4)")
    assert (t4.device, t4.dtype, t4.describe()) == ("cuda", "float16", "fp16 with loss scaling on cuda:0 (Tesla T4)")
    assert t4.arguments() == {"bf16": False, "fp16": True, "use_cpu": False}
    assert models.precision() == cpu  # this machine


def _scaled_steps(model, batch, steps: int = 1) -> None:
    """fp16 mixed-precision steps with dynamic loss scaling, as the trainer takes them under ``fp16=True``."""
    scaler = torch.amp.GradScaler("cpu")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            value = chunked_sum(model, batch) / batch["weights"][:, 1:].sum()
        scaler.scale(value).backward()
        scaler.unscale_(optimizer)
        scaler.step(optimizer)  # skipped while the scale overflows, as a loss scaler starts
        scaler.update()


def test_fp16_loss_scaling_trains_a_full_model_upcast_and_lora_over_an_fp16_base(pair, batch):
    end = int(batch["attention_mask"][0].sum())  # the end of one conversation: fp16 on a CPU is slow
    batch = {name: value[:1, end - 128:end] for name, value in batch.items()}
    full = copy.deepcopy(pair[0]).half()  # the weights as they load on a GPU without bf16
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        _scaled_steps(full, batch)
    full.zero_grad(set_to_none=True)
    models.trainable_in_fp32(full)
    before = [p.detach().clone() for p in full.parameters()]
    _scaled_steps(full, batch, steps=4)
    assert {p.dtype for p in full.parameters()} == {torch.float32}
    assert any(not torch.equal(a, b) for a, b in zip(before, full.parameters()))
    # LoRA: peft keeps the adapters fp32 over the fp16 base, which stays half the size
    lora = models.wrap_lora(copy.deepcopy(pair[0]).half(), SFTConfig())
    _scaled_steps(lora, batch)
    assert {p.dtype for p in lora.parameters() if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in lora.parameters() if not p.requires_grad} == {torch.float16}
