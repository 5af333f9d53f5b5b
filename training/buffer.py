"""iTool's replay buffer: every approved call step of the training data, its difficulty stage, and the policy's
perplexity of it (the step's complexity, fed back each round); the hardest are sampled for the round's search.

Sampling is proportional to perplexity, without replacement (iTool samples by complexity, so a step the
policy has learned still comes back now and then, and the round does not search the same few steps again
when their perplexity stays highest); ``top`` takes the highest perplexities instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from training.curriculum import STAGES, stages
from training.data import iter_steps


@dataclass
class Step:
    """One approved call step: after ``context``, the assistant ``message`` the annotators kept."""

    record_id: str
    #: The trajectory it belongs to (a correction example's is the trajectory it corrects).
    trajectory_id: str
    stage: str
    tools: list[dict[str, Any]]
    context: list[dict[str, Any]]
    message: dict[str, Any]
    perplexity: float | None = None

    @property
    def index(self) -> int:
        """The message's index in its trajectory."""
        return len(self.context)

    def as_record(self) -> dict[str, Any]:
        """The step as an example of its own, where only the approved message trains (what its perplexity is of)."""
        context = [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in self.context]
        return {"id": f"{self.record_id}:{self.index}", "tools": self.tools,
                "messages": [*context, {**self.message, "weight": 1}]}


def steps_of(records: Sequence[Mapping[str, Any]]) -> list[Step]:
    """Every trainable call step of ``records``, with its trajectory's curriculum stage."""
    stage_of = {i: name for name, indices in zip(STAGES, stages(records)) for i in indices}
    out = []
    for i, record in enumerate(records):
        trajectory = (record.get("meta") or {}).get("derived_from") or record.get("id")
        for context, message in iter_steps(record):
            out.append(Step(str(record.get("id", "")), str(trajectory), stage_of[i], list(record.get("tools") or []),
                            context, message))
    return out


def perplexity_by_stage(steps: Sequence[Step]) -> dict[str, float]:
    """Mean perplexity of the scored steps of each stage (``ppl_easy`` …) and of all (``ppl_all``)."""
    out = {}
    for name in (*STAGES, "all"):
        values = [s.perplexity for s in steps if s.perplexity is not None and name in (s.stage, "all")]
        if values:
            out[f"ppl_{name}"] = float(np.mean(values))
    return out


def sample(steps: Sequence[Step], size: int, how: str, seed: int) -> list[Step]:
    """``size`` scored steps, hardest first: drawn in proportion to perplexity, or the ``top`` ones."""
    scored = [s for s in steps if s.perplexity is not None]
    size = min(size, len(scored))
    if how == "top":
        return sorted(scored, key=lambda s: -s.perplexity)[:size]
    weights = np.array([s.perplexity for s in scored], dtype=np.float64)
    picked = np.random.default_rng(seed).choice(len(scored), size=size, replace=False, p=weights / weights.sum())
    return sorted((scored[i] for i in picked), key=lambda s: -s.perplexity)
