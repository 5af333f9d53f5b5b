"""Packing and length grouping for SFT: a packed batch trains exactly as its examples padded, each example keeps to
itself, a curriculum's stages pack apart, and without packing batches group examples of similar length."""
from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from store import Store  # noqa: E402
from training import models, sft  # noqa: E402
from training.__main__ import main  # noqa: E402
from training.config import TINY, BadValue, SFTConfig, TinyConfig  # noqa: E402
from training.curriculum import CurriculumOrder  # noqa: E402
from training.data import IGNORE, Encoder  # noqa: E402
from training.errors import TrainingError  # noqa: E402
from training.loss import weighted_ce  # noqa: E402
from training.packing import flat_batches, pack  # noqa: E402
from training.recorder import RunRecorder  # noqa: E402
from training_fixtures import records, write_jsonl, one_thread  # noqa: E402,F401 (one_thread: autouse)


def uneven(n: int) -> list[dict]:
    """Trajectories of 0 to 3 extra turns: a few hundred tokens apart."""
    return [records(k + 1, extra_turns=k % 4)[k] for k in range(n)]


@pytest.fixture(scope="module")
def pair():
    """The tiny model, its tokenizer trained on the trajectories as a run trains it."""
    return models.load(TINY, TinyConfig(seed=1, hidden_size=32, intermediate_size=64), uneven(6))


@pytest.fixture(scope="module")
def examples(pair):
    return [Encoder(pair[1]).encode(r) for r in uneven(6)]


def segments(row) -> list[np.ndarray]:
    return np.split(row.input_ids, np.cumsum(row.lengths)[:-1])


def loss_and_grads(model, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The weighted loss as ``compute_loss`` takes it: every other key of the batch goes to the model."""
    model.zero_grad()
    inputs = dict(batch)
    labels, weights = inputs.pop("labels"), inputs.pop("weights")
    loss = weighted_ce(model, inputs, labels, weights)[0] / weights[:, 1:].sum()  # the trainer's loss
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("flat", [False, True], ids=["rows", "flat"])
def test_a_packed_batch_has_the_loss_and_gradients_of_its_examples_padded(pair, examples, flat: bool):
    model, tok = pair
    rows = pack(examples, 1300)
    lengths = [len(e.input_ids) for e in examples]
    assert max(lengths) > 1.5 * min(lengths)  # uneven
    assert set(np.concatenate([e.weights for e in examples]).tolist()) >= {0.0, 1.0, 9.0}  # MAE zeros, PKT nines
    assert len(rows) < len(examples) and all(len(r.input_ids) <= 1300 for r in rows)
    padded_loss, padded_grads = loss_and_grads(model, sft.Collator(tok.pad_token_id)(examples))
    batch = sft.PackedCollator(tok.pad_token_id, flat=flat)(rows)
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == (1 if flat else len(rows))
    packed_loss, packed_grads = loss_and_grads(model, batch)
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-5, atol=1e-6)
    for packed, padded in zip(packed_grads, padded_grads):
        torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-6)


def sgd_step(pair, items, collator, batch_size: int, grad_accum: int, tmp_path: Path):
    """The loss of one SGD step at learning rate 1 through the trainer, and the weights it leaves."""
    from transformers import TrainingArguments

    model = copy.deepcopy(pair[0])
    args = TrainingArguments(output_dir=str(tmp_path / "sgd"), max_steps=1, per_device_train_batch_size=batch_size,
                             gradient_accumulation_steps=grad_accum, learning_rate=1.0, lr_scheduler_type="constant",
                             optim="sgd", max_grad_norm=0, report_to=[], remove_unused_columns=False, use_cpu=True,
                             save_strategy="no", disable_tqdm=True, train_sampling_strategy="sequential")
    trainer = sft.WeightedLossTrainer(model=model, args=args, train_dataset=sft.ExampleDataset(items),
                                      data_collator=collator(pair[1].pad_token_id))
    return trainer.train().training_loss, [p.detach().clone() for p in model.parameters()]


@pytest.mark.slow
def test_a_training_step_on_packed_rows_is_the_step_on_the_examples_padded(pair, examples, tmp_path: Path):
    """Through the trainer: its loss, the total weight it divides by, and the weights one step leaves."""
    rows = pack(examples, 1300)
    loss, weights = sgd_step(pair, examples, sft.Collator, len(examples), 1, tmp_path)
    for batch_size, grad_accum in ((len(rows), 1), (1, len(rows))):
        packed_loss, packed_weights = sgd_step(pair, rows, sft.PackedCollator, batch_size, grad_accum, tmp_path)
        assert packed_loss == pytest.approx(loss, rel=1e-5)
        for packed, padded in zip(packed_weights, weights):
            torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-6)


def test_an_example_in_a_packed_row_sees_nothing_of_its_neighbours_and_never_predicts_them(pair, examples):
    model, tok = pair
    three = sorted(examples, key=lambda e: len(e.input_ids))[:3]
    [row] = pack(three, sum(len(e.input_ids) for e in three))
    batch = sft.PackedCollator(tok.pad_token_id)([row])
    starts = np.cumsum(row.lengths)[:-1]
    assert (batch["position_ids"][0, starts] == 0).all()
    # the last token of each example predicts nothing of the next: its target is ignored and weighs nothing
    assert (batch["labels"][0, starts] == IGNORE).all() and (batch["weights"][0, starts] == 0).all()
    changed = copy.deepcopy(batch)
    changed["input_ids"][0, : starts[0]] = torch.randint(0, len(tok), (int(starts[0]),))  # another first example
    with torch.no_grad():
        logits, other = model(**batch).logits, model(**changed).logits
    assert not torch.allclose(logits[0, : starts[0]], other[0, : starts[0]])
    torch.testing.assert_close(logits[0, starts[0]:], other[0, starts[0]:], rtol=0, atol=1e-5)


def test_packing_keeps_every_example_whole_and_refuses_one_longer_than_a_row(examples):
    rows = pack(examples, 1300)
    packed = Counter(tuple(s) for r in rows for s in segments(r))
    assert packed == Counter(tuple(e.input_ids) for e in examples)
    by_ids = {tuple(e.input_ids): e for e in examples}
    for row in rows:
        for ids, weights in zip(segments(row), np.split(row.weights, np.cumsum(row.lengths)[:-1])):
            assert np.array_equal(weights[1:], by_ids[tuple(ids)].weights[1:])  # every weight kept past the first
    longest = max(examples, key=lambda e: len(e.input_ids))
    with pytest.raises(TrainingError, match=f"--pack-length 700: example {longest.id} has {len(longest.input_ids)}"):
        pack(examples, 700)


def test_the_attention_decides_the_layout_or_refuses_packing(pair):
    config = copy.deepcopy(pair[0].config)
    assert flat_batches(config) is False  # sdpa: one packed row per row, masked by transformers
    config._attn_implementation = "flash_attention_2"
    assert flat_batches(config) is True  # one flat row, for the variable-length kernel
    config._attn_implementation = None  # transformers would then build no mask at all
    with pytest.raises(TrainingError, match="would not keep packed examples apart"):
        flat_batches(config)


def prepared(tmp_path: Path, data: Path, **fields) -> tuple[sft.SFTRun, object]:
    config = SFTConfig(data=str(data), output=str(tmp_path / "out"), tiny_config='{"hidden_size": 32}', **fields)
    run = sft.SFTRun(config, RunRecorder(None, "train", "sft", "tiny", config.to_dict(), tmp_path / "out"))
    return run, run.prepare(run.arguments())


def test_a_curriculum_packs_each_stage_apart_and_keeps_its_order(tmp_path: Path):
    data = write_jsonl(tmp_path / "d.jsonl", uneven(18))
    _, plain = prepared(tmp_path, data, curriculum=True)
    stage_of = {tuple(plain.dataset[i].input_ids): s
                for s, indices in enumerate(plain.trainer_kwargs["sampler"].stage_indices) for i in indices}
    _, packed = prepared(tmp_path, data, curriculum=True, packing=True, pack_length=3000)
    sampler = packed.trainer_kwargs["sampler"]
    assert isinstance(sampler, CurriculumOrder) and isinstance(packed.trainer_kwargs["data_collator"],
                                                               sft.PackedCollator)
    order = [{stage_of[tuple(s)] for s in segments(packed.dataset[i])} for i in sampler]
    assert all(len(stages) == 1 for stages in order)  # no row mixes stages
    stages = [min(row) for row in order]
    assert stages == sorted(stages) and set(stages) == {0, 1, 2}  # easy rows, then medium, then hard
    assert sum(len(packed.dataset[i].lengths) for i in sampler) == 18
    assert packed.summary["packed_rows"] == len(packed.dataset) < 18 and packed.summary["pack_length"] == 3000


def padding(trainer) -> int:
    """Pad tokens over one epoch of the trainer's batches."""
    return sum(int((batch["attention_mask"] == 0).sum()) for batch in trainer.get_train_dataloader())


def test_without_packing_batches_group_examples_of_similar_length_unless_a_curriculum_orders_them(tmp_path: Path):
    data = write_jsonl(tmp_path / "d.jsonl", uneven(32))
    pads = {}
    for grouped in (False, True):
        run, ready = prepared(tmp_path, data, batch_size=2, group_by_length=grouped)
        args = run.arguments()
        assert args.train_sampling_strategy == ("group_by_length" if grouped else "random")
        trainer = sft.WeightedLossTrainer(model=ready.model, args=args, train_dataset=ready.dataset,
                                          processing_class=ready.tokenizer, **ready.trainer_kwargs)
        pads[grouped] = padding(trainer)
    assert pads[True] < pads[False] / 2
    run, ready = prepared(tmp_path, data, group_by_length=True, curriculum=True)
    assert run.arguments().train_sampling_strategy == "random"
    assert isinstance(ready.trainer_kwargs["sampler"], CurriculumOrder)


def test_packing_from_the_command_line_trains_and_records_its_rows(tmp_path: Path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", uneven(8))
    db = str(tmp_path / "c.db")
    argv = ["sft", "--data", str(data), "--db", db, "--tiny-config", '{"hidden_size": 32}', "--max-steps", "2",
            "--batch-size", "1", "--packing", "--pack-length", "2500"]
    assert main([*argv, "--output", str(tmp_path / "ok")]) == 0
    run = Store.open(db).runs()[0]
    assert run.status == "completed" and run.config["packing"] is True and run.summary["steps"] == 2
    assert run.dataset["pack_length"] == 2500 and run.dataset["packed_rows"] < 8
    capsys.readouterr()
    assert main([*argv[:-1], "700", "--output", str(tmp_path / "short")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --pack-length 700: example t") and "raise --pack-length" in line
    assert Store.open(db).runs()[0].status == "failed"
    with pytest.raises(BadValue, match="--pack-length: must be at least 1"):
        SFTConfig(pack_length=0)
