"""Supervised fine-tuning with LoRA and the MAE × PKT weighted loss.

Loss = Σ wᵢ·CEᵢ / Σ wᵢ over the assistant tokens of the whole accumulated
batch: the trainer's ``num_items_in_batch`` is replaced by the total weight of
all micro-batches of the optimizer step, and each micro-batch contributes its
weighted sum divided by that total, so accumulation changes nothing.
"""
from __future__ import annotations

import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from store.records import is_derived
from training import distributed, models
from training.config import SFTConfig
from training.curriculum import CurriculumOrder, stages
from training.data import IGNORE, Encoder, Example, load_records, sft_records
from training.errors import TrainingError
from training.outline import AlgorithmRun, Prepared, shared_arguments
from training.recorder import RunRecorder


class ExampleDataset(Dataset):
    def __init__(self, examples: list[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]


class Collator:
    """Right-pads a batch: ids with the pad token, labels with -100, weights with 0."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[Example]) -> dict[str, torch.Tensor]:
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


def weighted_ce_sum(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ wᵢ·CEᵢ, position i predicting token i+1.

    Like the built-in causal-LM loss, the labels and weights are shifted left
    (padded with -100 / 0) rather than the logits sliced, so the logits are
    never copied; a weight-0 position costs one multiply by zero.
    """
    targets = F.pad(labels, (0, 1), value=IGNORE)[:, 1:]
    shifted = F.pad(weights, (0, 1), value=0.0)[:, 1:]
    ce = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE, reduction="none"
    )
    return (ce * shifted.reshape(-1)).sum()


class WeightedLossTrainer(Trainer):
    """A ``Trainer`` whose loss is the MAE × PKT weighted cross entropy."""

    # compute_loss divides by the whole optimizer step's weight: never divide again
    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, sampler: CurriculumOrder | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sampler = sampler

    def _get_train_sampler(self, train_dataset=None):
        return self._sampler if self._sampler is not None else super()._get_train_sampler(train_dataset)

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
        outputs = model(**inputs)
        total = num_items_in_batch if num_items_in_batch is not None else weights[:, 1:].sum()
        loss = weighted_ce_sum(outputs.logits, labels, weights) / torch.clamp(total, min=1e-12)
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
        sampler = CurriculumOrder(stages(kept), seed=config.seed) if config.curriculum else None
        return Prepared(model, tokenizer, ExampleDataset(examples), summary,
                        {"data_collator": Collator(tokenizer.pad_token_id), "sampler": sampler})

    def arguments(self) -> TrainingArguments:
        config = self.config
        return TrainingArguments(
            **shared_arguments(config),
            warmup_steps=config.warmup,
            weight_decay=config.weight_decay,
            save_total_limit=config.save_total_limit,
            data_seed=config.seed,
            remove_unused_columns=False,
            include_num_input_tokens_seen="non_padding",
            dataloader_num_workers=0,
        )

    def resume_from(self) -> str | None:
        return get_last_checkpoint(str(self.output)) if self.config.resume and self.output.is_dir() else None


def train(config: SFTConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Run SFT; returns the run summary. Raises ``TrainingError`` on bad input."""
    return SFTRun(config, recorder).train()
