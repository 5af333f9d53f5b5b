"""A model's perplexity of assistant tokens: of each trajectory (``python -m training score``, so review can take
the hardest first) and of each approved call step (the replay buffer of iTool's loop).

Perplexity = exp of the mean NLL of the tokens that train (weight > 0, MAE on, PKT off), located as training
locates them (:class:`training.data.Encoder`), so a masked erroneous call and the prompt never count.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Mapping, Sequence

from store import Store, StoreError
from store.db import REVIEW_FILTERS
from training import models
from training.config import ScoreConfig
from training.data import Encoder, Example
from training.errors import TrainingError
from training.recorder import RunRecorder
from training.loss import weighted_ce


class Perplexity:
    """Scores records with a loaded model, one at a time, through the training loss (:func:`training.loss.weighted_ce`:
    only the tokens that weigh go through the output layer, so a 150k-token vocabulary's logits are never held)."""

    def __init__(self, model, tokenizer, max_length: int):
        self.model = model
        self.encoder = Encoder(tokenizer, max_length=max_length, w_max=1.0, mae=True)
        self.device = next(model.parameters()).device

    def of(self, records: Sequence[Mapping[str, Any]]) -> list[float | None]:
        """Each record's perplexity; None for one with no trainable token (refused, masked, or cut off)."""
        examples = [self.encoder.encode(r) for r in records]
        return [math.exp(self._mean_nll(e)) if e.trainable else None for e in examples]

    def _mean_nll(self, example: Example) -> float:
        import torch

        def row(values, dtype) -> torch.Tensor:
            return torch.as_tensor(values, dtype=dtype, device=self.device)[None]

        labels, weights = row(example.labels, torch.long), row(example.weights, torch.float32)
        with torch.no_grad():
            total, _ = weighted_ce(self.model, {"input_ids": row(example.input_ids, torch.long)}, labels, weights)
        return float(total / weights[0, 1:].sum())


def policy(name: str, config: ScoreConfig | Any, records: Sequence[Mapping[str, Any]] | None = None):
    """``(model, tokenizer, max_length)`` of the model ``name``, on the device and in eval mode; ``config`` gives
    the template, the tiny model's size and the token budget (``max_length``, ``max_length_cap``)."""
    model, tokenizer = models.load(name, config.tiny, records, config.chat_template)
    device, _ = models.device_and_dtype()
    model.to(device).eval()
    return model, tokenizer, models.max_length(config, model.config)


def store_scores(store: Store, scorer: Perplexity, review: str, model: str, run_id: str | None) -> dict[str, Any]:
    """Score the store's trajectories under ``review`` and store each one's perplexity; what was done."""
    records = list(store.iter_records(status=review, derived=False))
    values = scorer.of(records)
    scored = {str(r["id"]): v for r, v in zip(records, values) if v is not None}
    store.set_scores("perplexity", scored, model=model, run_id=run_id)
    return {"scored": len(scored), "unscored": len(records) - len(scored),
            "mean_perplexity": sum(scored.values()) / len(scored) if scored else None}


def run(config: ScoreConfig, recorder: RunRecorder) -> dict[str, Any]:
    """``python -m training score``: the model's perplexity of each ``--review`` trajectory, into the store."""
    if (missing := config.missing()) is not None:
        raise TrainingError(str(missing))
    if config.review not in REVIEW_FILTERS:
        raise TrainingError(f"--review: must be one of {', '.join(REVIEW_FILTERS)}, got {config.review!r}")
    try:
        store = Store.open(str(config.db), create=False)
    except StoreError as exc:
        raise TrainingError(str(exc)) from None
    with store:
        records = list(store.iter_records(status=config.review, derived=False))
        if not records:
            raise TrainingError(f"{config.db}: no {config.review} trajectory to score")
        recorder.start({"source": config.db, "trajectories": len(records), "review": config.review})
        model, tokenizer, max_length = policy(config.model, config, records)
        scorer = Perplexity(model, tokenizer, max_length)
        summary = store_scores(store, scorer, config.review, config.model, recorder.run_id)
    recorder.log(0, {k: v for k, v in summary.items() if v is not None})
    mean = summary["mean_perplexity"]
    print(f"{config.model}: perplexity of {summary['scored']} {config.review} trajectories"
          + (f", mean {mean:.3f}" if mean is not None else "")
          + (f"; {summary['unscored']} with no trainable token" if summary["unscored"] else ""), file=sys.stderr)
    return {"status": "completed", **summary, "output": str(config.output)}
