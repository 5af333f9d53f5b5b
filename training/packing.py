"""Packing: several whole examples in one row of at most ``pack_length`` tokens, each kept to itself.

TRL's best-fit-decreasing ``pack_dataset`` fills the rows, packing every column alike, so each token keeps
its label and its MAE × PKT weight. What keeps the examples apart:

- attention: position ids restart at 0 for each example and no 2D attention mask is passed, so
  transformers' masking utilities see the restarts and build a causal mask confined to each example (eager,
  sdpa and flex attention; exact on a CPU), and flash attention runs its variable-length kernel over the
  boundaries the collator passes (see ``training.sft.PackedCollator``);
- the loss: an example's first token is no target (label -100, weight 0), so the last token of one example
  never predicts the first of the next. Unpacked, a first token is never a target either, so the loss and
  gradients of a packed batch are those of the same examples unpacked.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from training.data import IGNORE, Example
from training.errors import TrainingError

#: The attention implementations whose masks transformers confines to each packed example.
MASKED_ATTENTION = ("eager", "sdpa", "flex_attention")


@dataclass
class PackedRow:
    """Examples laid end to end: ``lengths`` holds each one's token count, in order."""

    input_ids: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    lengths: np.ndarray

    @classmethod
    def joined(cls, rows: Sequence["PackedRow"]) -> "PackedRow":
        """The rows as one row (a flat batch)."""
        return cls(*(np.concatenate([getattr(r, name) for r in rows])
                     for name in ("input_ids", "labels", "weights", "lengths")))


def position_ids(lengths: np.ndarray) -> np.ndarray:
    """0, 1, … restarting at each example: ``[3, 2]`` gives ``[0, 1, 2, 0, 1]``."""
    starts = np.cumsum(lengths) - lengths
    return np.arange(int(np.sum(lengths))) - np.repeat(starts, lengths)


def flat_batches(model_config: Any) -> bool:
    """Whether the model runs flash attention, which needs a flat batch; ``TrainingError`` when its attention
    would let packed examples see each other."""
    from transformers.utils.generic import is_flash_attention_requested

    if is_flash_attention_requested(model_config):
        return True
    implementation = getattr(model_config, "_attn_implementation", None)
    if implementation not in MASKED_ATTENTION:
        raise TrainingError(f"--packing: the model's attention ({implementation}) would not keep packed examples "
                            f"apart; use {', '.join(MASKED_ATTENTION)} or flash attention, or --no-packing")
    return False


def pack(examples: Sequence[Example], budget: int) -> list[PackedRow]:
    """Whole examples in rows of at most ``budget`` tokens (best fit decreasing); none is ever cut."""
    if not examples:
        return []
    longest = max(examples, key=lambda e: len(e.input_ids))
    if len(longest.input_ids) > budget:
        raise TrainingError(f"--pack-length {budget}: example {longest.id or '?'} has {len(longest.input_ids)} "
                            "tokens; raise --pack-length or lower --max-length")
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    columns = {"input_ids": [e.input_ids for e in examples], "labels": [], "weights": []}
    for e in examples:
        labels, weights = e.labels.copy(), e.weights.copy()
        labels[0], weights[0] = IGNORE, 0.0  # the previous example's last token must not learn to predict it
        columns["labels"].append(labels)
        columns["weights"].append(weights)
    with _quiet_datasets():
        packed = pack_dataset(Dataset.from_dict(columns), budget, "bfd", map_kwargs={"batch_size": len(examples)})
    return [PackedRow(r["input_ids"], r["labels"], r["weights"], r["seq_lengths"])
            for r in packed.with_format("numpy")]


def pack_groups(examples: Sequence[Example], groups: Sequence[Sequence[int]],
                budget: int) -> tuple[list[PackedRow], list[list[int]]]:
    """Each group of example indices packed on its own (a curriculum's stages): the rows, and each group's rows."""
    rows: list[PackedRow] = []
    row_groups = []
    for group in groups:
        packed = pack([examples[i] for i in group], budget)
        row_groups.append(list(range(len(rows), len(rows) + len(packed))))
        rows += packed
    return rows, row_groups


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No ``Map: 100%`` bar on stderr, where a run's warnings go."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    quiet = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not quiet:
            enable_progress_bars()
