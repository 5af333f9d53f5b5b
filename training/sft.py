"""Supervised fine-tuning with LoRA and the MAE × PKT weighted loss.

Loss = Σ wᵢ·CEᵢ / Σ wᵢ over the assistant tokens of the whole accumulated
batch: the trainer's ``num_items_in_batch`` is replaced by the total weight of
all micro-batches of the optimizer step, and each micro-batch contributes its
weighted sum divided by that total, so accumulation changes nothing.

Batches are right-padded, examples of similar length together (``--group-by-length``),
or packed (``--packing``: whole examples in rows, each attending only to itself; see
:mod:`training.packing`), with the same loss.
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import get_last_checkpoint

from store.records import is_derived
from training import distributed, models
from training.config import SFTConfig
from training.curriculum import CurriculumOrder, stages
from training.data import IGNORE, Encoder, Example, load_records, sft_records
from training.errors import TrainingError
from training.loss import describe as describe_loss, weighted_ce
from training.outline import AlgorithmRun, Prepared, shared_arguments
from training.packing import PackedRow, flat_batches, pack_groups, position_ids
from training.recorder import RunRecorder


class ExampleDataset(Dataset):
    """Examples, or packed rows of them."""

    def __init__(self, examples: Sequence[Example | PackedRow]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example | PackedRow:
        return self.examples[index]

    @property
    def lengths(self) -> list[int]:
        return [len(e.input_ids) for e in self.examples]


class Collator:
    """Right-pads a batch: ids with the pad token, labels with -100, weights with 0."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: Sequence[Example | PackedRow]) -> dict[str, torch.Tensor]:
        length = max(len(e.input_ids) for e in batch)
        out = {
            "input_ids": torch.full((len(batch), length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(batch), length), dtype=torch.long),
            "labels": torch.full((len(batch), length), IGNORE, dtype=torch.long),
            "weights": torch.zeros((len(batch), length), dtype=torch.float32),
        }
        for row, e in enumerate(batch):
            n = len(e.input_ids)
            out["input_ids"][row, :n] = torch.from_numpy(e.input_ids)
            out["attention_mask"][row, :n] = 1
            out["labels"][row, :n] = torch.from_numpy(e.labels)
            out["weights"][row, :n] = torch.from_numpy(e.weights)
        return out


class PackedCollator(Collator):
    """Packed rows as the model takes them: position ids restarting at each example and no attention mask, from
    which transformers confines attention to each example (see :mod:`training.packing`).

    Each packed row is a row, right-padded to the longest, the padding a sequence of its own; with ``flat``
    (flash attention, whose variable-length kernel needs one row) the whole micro-batch is one row, unpadded,
    with the boundaries that kernel takes, as TRL's padding-free collator gives them.
    """

    def __init__(self, pad_token_id: int, flat: bool = False):
        super().__init__(pad_token_id)
        self.flat = flat

    def __call__(self, batch: Sequence[PackedRow]) -> dict[str, Any]:
        rows = [PackedRow.joined(batch)] if self.flat else batch
        out: dict[str, Any] = super().__call__(rows)
        width = out.pop("attention_mask").shape[1]
        out["position_ids"] = torch.stack([
            torch.from_numpy(position_ids(np.append(r.lengths, width - len(r.input_ids)))) for r in rows])
        out["use_cache"] = False  # with a cache, transformers never looks for packed sequences
        if self.flat:
            bounds = torch.from_numpy(np.cumsum(np.append(0, rows[0].lengths))).to(torch.int32)
            longest = int(rows[0].lengths.max())
            out.update(cu_seq_lens_q=bounds, cu_seq_lens_k=bounds, max_length_q=longest, max_length_k=longest)
        return out


class WeightedLossTrainer(Trainer):
    """A ``Trainer`` whose loss is the MAE × PKT weighted cross entropy."""

    # compute_loss divides by the whole optimizer step's weight: never divide again
    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, sampler: CurriculumOrder | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sampler = sampler
        if self.args.fp16:
            models.trainable_in_fp32(self.model)
        if self.is_world_process_zero():
            checkpointing = "on" if self.args.activation_checkpointing else "off"
            print(f"precision: {models.precision().describe()}, gradient checkpointing {checkpointing}, "
                  f"loss: {describe_loss(self.model)}", file=sys.stderr)

    def _get_train_sampler(self, train_dataset=None):
        if self._sampler is not None:
            return self._sampler
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and isinstance(dataset, ExampleDataset):
            # the base reads lengths from a datasets column or from mapping items, and our items are Examples
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=dataset.lengths)
        return super()._get_train_sampler(train_dataset)

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """The total weight of the step's micro-batches (on every process), where the base counts labels."""
        if not batch_samples or "weights" not in batch_samples[0]:
            return None
        total = sum(batch["weights"][:, 1:].sum() for batch in batch_samples).to(device)
        if self.args.world_size > 1:
            total = self.accelerator.gather(total).sum()
        return total

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        weights = inputs.pop("weights")
        weighted, outputs = weighted_ce(model, inputs, labels, weights)
        total = num_items_in_batch if num_items_in_batch is not None else weights[:, 1:].sum()
        loss = weighted / torch.clamp(total, min=1e-12)
        if self.args.world_size > 1:
            # gradients are averaged over processes, and the denominator is already global
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss


class SFTRun(AlgorithmRun):
    trainer_class = WeightedLossTrainer
    config: SFTConfig

    @property
    def adapts(self) -> bool:
        return not self.config.full_finetune

    def prepare(self, args: TrainingArguments) -> Prepared:
        config = self.config
        if config.full_finetune and models.is_adapter(config.base_model):
            raise TrainingError(f"--full-finetune trains a full model: {config.base_model} holds a LoRA adapter")
        records = sft_records(load_records(config.data, config.db))
        if not records:
            raise TrainingError("the dataset is empty: no accepted trajectory")
        model, tokenizer = models.load(config.base_model, config.tiny, records, config.chat_template,
                                       trainable_adapter=True)
        encoder = Encoder(tokenizer, max_length=models.max_length(config, model.config), w_max=config.w_max,
                          mae=config.mae)
        kept, examples = distributed.encode_once(args, self.output, encoder, records)
        if encoder.report.summary():
            print(f"warning: {encoder.report.summary()}", file=sys.stderr)
        corrections = sum(map(is_derived, kept))
        summary = {
            "source": config.data or config.db,
            "trajectories": len(kept) - corrections,
            "correction_examples": corrections,
            "max_length": encoder.max_length,
            "tokens": int(sum(len(e.input_ids) for e in examples)),
            "trainable_tokens": int(sum(e.trainable for e in examples)),
            "refused": len(encoder.report.refused),
            "truncated": len(encoder.report.truncated),
            "truncated_trained_tokens": encoder.report.lost_tokens,
        }
        groups = stages(kept) if config.curriculum else [list(range(len(examples)))]
        collator = Collator(tokenizer.pad_token_id)
        items: Sequence[Example | PackedRow] = examples
        if config.packing:
            collator = PackedCollator(tokenizer.pad_token_id, flat=flat_batches(model.config))
            budget = config.pack_length or encoder.max_length
            items, groups = pack_groups(examples, groups, budget)  # a curriculum's stages packed one by one
            summary.update(pack_length=budget, packed_rows=len(items),
                           pack_fill=round(summary["tokens"] / (len(items) * budget), 3))
        sampler = CurriculumOrder(groups, seed=config.seed) if config.curriculum else None
        return Prepared(model, tokenizer, ExampleDataset(items), summary,
                        {"data_collator": collator, "sampler": sampler})

    def arguments(self) -> TrainingArguments:
        config = self.config
        return TrainingArguments(
            **shared_arguments(config),
            warmup_steps=config.warmup,
            weight_decay=config.weight_decay,
            save_total_limit=config.save_total_limit,
            data_seed=config.seed,
            # the curriculum's order wins; packed rows are all about as long
            train_sampling_strategy="group_by_length" if config.group_by_length and not (
                config.packing or config.curriculum) else "random",
            remove_unused_columns=False,
            include_num_input_tokens_seen="non_padding",
            dataloader_num_workers=0,
        )

    def resume_from(self) -> str | None:
        return get_last_checkpoint(str(self.output)) if self.config.resume and self.output.is_dir() else None


def train(config: SFTConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Run SFT; returns the run summary. Raises ``TrainingError`` on bad input."""
    return SFTRun(config, recorder).train()
