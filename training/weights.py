"""PKT (TL-Training): which tokens of a tool call are key, and how much they weigh.

A tool name's key tokens are its first token and, for every other tool of the
same toolset whose name shares a prefix with it, the token where the two names
diverge: the token holding the first character that differs (or, when the
other name extends this one, the token right after the name, where the model
decides to stop). Working from characters and offset mappings keeps this
independent of the template and the tokenizer.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def token_at(starts: np.ndarray, char: int) -> int:
    """Index of the token whose span holds character ``char`` (offsets sorted by start)."""
    return int(np.searchsorted(starts, char, side="right")) - 1


def divergence(name: str, other: str) -> int | None:
    """Characters ``name`` shares with ``other`` before they differ; None when they share none."""
    shared = 0
    for a, b in zip(name, other):
        if a != b:
            break
        shared += 1
    return shared or None


def key_token_indices(
    starts: np.ndarray, name_start: int, name: str, toolset_names: Iterable[str], text_length: int
) -> set[int]:
    """The key tokens of one occurrence of ``name`` that starts at character ``name_start``."""
    keys = {token_at(starts, name_start)}
    for other in toolset_names:
        if other == name:
            continue
        shared = divergence(name, other)
        if shared is not None:
            keys.add(token_at(starts, min(name_start + shared, text_length - 1)))
    return keys


def key_weight(n_key: int, n_trainable: int, w_max: float) -> float:
    """``clip(|non-key| / |key|, 1, w_max)``; 1 when there is no key token."""
    if n_key == 0:
        return 1.0
    return float(min(max((n_trainable - n_key) / n_key, 1.0), w_max))


def apply_pkt(weights: np.ndarray, keys: Sequence[int], w_max: float) -> None:
    """Multiply the trainable key tokens of one sequence by their PKT weight, in place.

    The ratio is taken over the sequence's trainable tokens (weight > 0), so
    tokens masked by MAE neither count nor get weighted.
    """
    if w_max <= 1 or not keys:
        return
    idx = np.fromiter(keys, dtype=np.int64)
    idx = idx[weights[idx] > 0]
    weight = key_weight(len(idx), int(np.count_nonzero(weights)), w_max)
    weights[idx] *= weight
