"""DPO through TRL's ``DPOTrainer`` on step-level preference pairs (iTool).

Pairs come from two places:
- corrections (each record's ``meta.corrections``, so a JSONL export serves as
  well as the store): the annotator's fixed call is preferred to the original
  call, at the same context;
- accepted over rejected trajectories of the same instruction: at the first
  assistant step where they part, the accepted step is preferred.
Prompts and completions are rendered with the model's chat template as text.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import trl
from datasets import Dataset
from trl import DPOTrainer

from store.records import corrected_message, is_derived
from training import models
from training.config import DPOConfig
from training.data import DB_SUFFIXES, Renderer, decision, load_records
from training.errors import TrainingError
from training.outline import AlgorithmRun, Prepared, shared_arguments
from training.recorder import RunRecorder


@dataclass
class Pair:
    """One step-level preference: at ``context``, ``chosen`` over ``rejected``."""

    tools: list[dict[str, Any]]
    context: list[dict[str, Any]]
    chosen: dict[str, Any]
    rejected: dict[str, Any]
    source: str


def correction_pairs(records: Iterable[Mapping[str, Any]]) -> Iterator[Pair]:
    """The corrected call preferred to the original one, at the same context, for each of the records'
    ``meta.corrections`` (a store's records and a JSONL export's lines alike)."""
    for record in records:
        messages = record["messages"]
        for number, correction in enumerate((record.get("meta") or {}).get("corrections") or []):
            index = correction.get("message") if isinstance(correction, Mapping) else None
            if not (isinstance(index, int) and 0 <= index < len(messages)
                    and messages[index].get("role") == "assistant" and correction.get("tool_calls")):
                raise TrainingError(f"{record.get('id', '?')}: meta.corrections[{number}] must name an assistant "
                                    "message ('message') and its corrected 'tool_calls'")
            original = messages[index]
            yield Pair(list(record.get("tools") or []), list(messages[:index]),
                       corrected_message(original, correction["tool_calls"]), dict(original), "correction")


def decision_pairs(accepted: Iterable[Mapping[str, Any]], rejected: Iterable[Mapping[str, Any]]) -> Iterator[Pair]:
    """For each rejected trajectory, a pair with every accepted one of the same instruction.

    Derived correction examples are left out: they are not trajectories (their pairs are correction pairs).
    """
    by_instruction: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in accepted:
        if not is_derived(record):
            by_instruction[_instruction(record)].append(record)
    for bad in rejected:
        if is_derived(bad):
            continue
        for good in by_instruction.get(_instruction(bad), []):
            pair = _first_difference(good, bad)
            if pair is not None:
                yield pair


def _instruction(record: Mapping[str, Any]) -> str:
    meta = record.get("meta") or {}
    if meta.get("instruction"):
        return str(meta["instruction"])
    return next((str(m.get("content")) for m in record["messages"] if m.get("role") == "user"), "")


def _step_key(message: Mapping[str, Any]) -> tuple:
    calls = tuple(
        ((c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
        for c in message.get("tool_calls") or []
    )
    return message.get("role"), message.get("content") or "", calls


def _first_difference(good: Mapping[str, Any], bad: Mapping[str, Any]) -> Pair | None:
    """The pair at the first message where the two part, when that message is the assistant's in both."""
    for index, (a, b) in enumerate(zip(good["messages"], bad["messages"])):
        if _step_key(a) == _step_key(b):
            continue
        if a.get("role") == b.get("role") == "assistant":
            return Pair(list(good.get("tools") or []), list(good["messages"][:index]), dict(a), dict(b), "decision")
        return None
    return None


def collect_pairs(data: str | None, db: str | None) -> list[Pair]:
    """Every preference pair the dataset offers: corrections first, then accepted-over-rejected.

    From a store, its accepted and rejected trajectories; from a JSONL file, every line but skipped
    ones, a line without a decision counting as accepted (files from elsewhere carry none).
    """
    from_store = Path(data).suffix in DB_SUFFIXES if data else bool(db)
    if from_store:
        accepted, rejected = load_records(data, db, "accepted"), load_records(data, db, "rejected")
    else:
        records = load_records(data, db)
        accepted = [r for r in records if decision(r) in {"accept", None}]
        rejected = [r for r in records if decision(r) == "reject"]
    return [*correction_pairs([*accepted, *rejected]), *decision_pairs(accepted, rejected)]


def rows(pairs: Sequence[Pair], renderer: Renderer) -> list[dict[str, str]]:
    """Pairs as TRL's standard (text) preference rows."""
    return [
        {
            "prompt": renderer.prompt(p.context, p.tools),
            "chosen": renderer.completion(p.context, p.chosen, p.tools),
            "rejected": renderer.completion(p.context, p.rejected, p.tools),
        }
        for p in pairs
    ]


class DPORun(AlgorithmRun):
    """DPO on the dataset's pairs and ``extra`` ones (the step-level pairs of an iTool round)."""

    config: DPOConfig

    trainer_class = DPOTrainer

    def __init__(self, config: DPOConfig, recorder: RunRecorder, extra: Sequence[Pair] = ()):
        super().__init__(config, recorder)
        self.extra = list(extra)

    def prepare(self, args: trl.DPOConfig) -> Prepared:
        config = self.config
        pairs = [*collect_pairs(config.data, config.db), *self.extra]
        if not pairs:
            raise TrainingError("no preference pairs: the dataset has no corrections and no rejected trajectory "
                                "with an accepted one of the same instruction")
        corpus = [{"messages": [*p.context, p.chosen, p.rejected], "tools": p.tools} for p in pairs]
        model, tokenizer = models.load(config.base_model, config.tiny, corpus, config.chat_template,
                                       trainable_adapter=True)
        max_length = args.max_length
        dataset, too_long = fitting_rows(rows(pairs, Renderer.of(tokenizer)), tokenizer, max_length)
        sources: dict[str, int] = defaultdict(int)
        for p in pairs:
            sources[p.source] += 1
        summary = {"source": config.data or config.db, "pairs": len(dataset), "pairs_too_long": too_long,
                   "max_length": max_length, **{f"{k}_pairs": v for k, v in sources.items()}}
        return Prepared(model, tokenizer, Dataset.from_list(dataset), summary)

    def arguments(self) -> trl.DPOConfig:
        """The base model's context length is read from its config file: the weights load after the arguments."""
        losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, self.config.sft_weight]} \
            if self.config.sft_weight else {}
        return trl.DPOConfig(**shared_arguments(self.config), beta=self.config.beta,
                             max_length=models.max_length(self.config), **losses)


def fitting_rows(dataset: list[dict[str, str]], tokenizer, max_length: int) -> tuple[list[dict[str, str]], int]:
    """The rows whose prompt and longer completion fit ``max_length`` tokens, and how many did not.

    TRL drops a row whose prompt alone fills ``max_length`` and cuts the completion of one that
    only partly fits; a row cut is a preference between two truncated calls, so it is dropped
    here and counted. When none fits, the one line says how long the longest is.
    """
    def length(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    lengths = [length(r["prompt"]) + max(length(r["chosen"]), length(r["rejected"])) for r in dataset]
    kept = [r for r, n in zip(dataset, lengths) if n <= max_length]
    if not kept:
        raise TrainingError(f"every preference pair is longer than --max-length {max_length}: the longest prompt "
                            f"and completion are {max(lengths)} tokens; raise --max-length (or --max-length-cap)")
    return kept, len(dataset) - len(kept)


def train(config: DPOConfig, recorder: RunRecorder) -> dict[str, Any]:
    return DPORun(config, recorder).train()
