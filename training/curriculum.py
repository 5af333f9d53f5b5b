"""Easy → medium → hard ordering (iTool's warm-up).

A trajectory's difficulty combines, as average ranks, the three things iTool
uses: how many candidate tools it offers, how long its toolset's text is, and
how many calls it makes. The lowest third of scores is easy, the highest hard.
"""
from __future__ import annotations

import json
import random
from typing import Any, Iterator, Mapping, Sequence

STAGES = ("easy", "medium", "hard")


def features(record: Mapping[str, Any]) -> tuple[int, int, int]:
    tools = record.get("tools") or []
    calls = sum(len(m.get("tool_calls") or []) for m in record["messages"] if m.get("role") == "assistant")
    return len(tools), len(json.dumps(tools)), calls


def _ranks(values: Sequence[float]) -> list[float]:
    """Average ranks in [0, 1]: ties share their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        mean = (i + j) / 2 / max(len(values) - 1, 1)
        for k in range(i, j + 1):
            ranks[order[k]] = mean
        i = j + 1
    return ranks


def stages(records: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Indices of ``records`` in three stages, easy first."""
    if not records:
        return [[], [], []]
    columns = list(zip(*(features(r) for r in records)))
    ranked = [_ranks(column) for column in columns]
    scores = [sum(r[i] for r in ranked) / len(ranked) for i in range(len(records))]
    order = sorted(range(len(records)), key=lambda i: (scores[i], i))
    third = len(order) / 3
    return [order[round(k * third) : round((k + 1) * third)] for k in range(3)]


class CurriculumOrder:
    """Indices stage by stage, shuffled within each stage, anew each epoch (the trainer calls ``set_epoch``)."""

    def __init__(self, stage_indices: list[list[int]], seed: int = 0):
        self.stage_indices = stage_indices
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed + self.epoch)
        for stage in self.stage_indices:
            shuffled = list(stage)
            rng.shuffle(shuffled)
            yield from shuffled

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(len(s) for s in self.stage_indices)
