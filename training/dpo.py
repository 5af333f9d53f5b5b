"""DPO through TRL's ``DPOTrainer`` on step-level preference pairs (iTool).

Pairs come from two places:
- corrections: the annotator's fixed call is preferred to the original call,
  at the same context;
- accepted over rejected trajectories of the same instruction: at the first
  assistant step where they part, the accepted step is preferred.
Prompts and completions are rendered with the model's chat template as text.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from training import models
from training.callbacks import GracefulStop, MetricsCallback
from training.data import DB_SUFFIXES, Renderer, decision, load_records
from training.errors import TrainingError
from training.options import RunOptions
from training.sft import wrap_lora


@dataclass
class DPOOptions(RunOptions):
    """A preference run's settings (named so as not to shadow TRL's ``DPOConfig``)."""

    output: str = "runs/dpo"
    learning_rate: float = 5e-6
    beta: float = 0.1
    max_length: int | None = 2048


@dataclass
class Pair:
    """One step-level preference: at ``context``, ``chosen`` over ``rejected``."""

    tools: list[dict[str, Any]]
    context: list[dict[str, Any]]
    chosen: dict[str, Any]
    rejected: dict[str, Any]
    source: str


def correction_pairs(store_path: str) -> Iterator[Pair]:
    """The corrected call preferred to the original one, for every correction in the store."""
    from store import Store

    with Store.open(store_path, create=False) as store:
        tools_of: dict[str | None, list[dict[str, Any]]] = {}
        for correction in store.corrections():
            trajectory = store.trajectory(correction.trajectory_id)
            if trajectory is None or correction.message_index >= len(trajectory.messages):
                continue
            if trajectory.toolset not in tools_of:
                toolset = store.toolset(trajectory.toolset) if trajectory.toolset else None
                tools_of[trajectory.toolset] = toolset.openai_tools() if toolset else []
            messages = [m.to_openai() for m in trajectory.messages]
            original = messages[correction.message_index]
            if original.get("role") != "assistant":
                continue
            chosen = {"role": "assistant", "content": None, "tool_calls": correction.tool_calls}
            yield Pair(tools_of[trajectory.toolset], messages[: correction.message_index], chosen, original, "correction")


def decision_pairs(accepted: Iterable[Mapping[str, Any]], rejected: Iterable[Mapping[str, Any]]) -> Iterator[Pair]:
    """For each rejected trajectory, a pair with every accepted one of the same instruction."""
    by_instruction: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in accepted:
        by_instruction[_instruction(record)].append(record)
    for bad in rejected:
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
    """Every preference pair the dataset offers: corrections first, then accepted-over-rejected."""
    store_path = data if data and Path(data).suffix in DB_SUFFIXES else (db if not data else None)
    pairs: list[Pair] = list(correction_pairs(store_path)) if store_path else []
    if store_path:
        accepted, rejected = load_records(data, db, "accepted"), load_records(data, db, "rejected")
    else:
        records = load_records(data, db)
        accepted = [r for r in records if decision(r) in {"accept", None}]
        rejected = [r for r in records if decision(r) == "reject"]
    pairs.extend(decision_pairs(accepted, rejected))
    return pairs


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


def train(options: DPOOptions, recorder) -> dict[str, Any]:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    stop = GracefulStop()
    output = Path(options.output)
    pairs = collect_pairs(options.data, options.db)
    if not pairs:
        raise TrainingError("no preference pairs: the dataset has no corrections and no rejected trajectory "
                            "with an accepted one of the same instruction")
    corpus = [{"messages": [*p.context, p.chosen, p.rejected], "tools": p.tools} for p in pairs]
    model, tokenizer = models.load(options.base_model, options.tiny, corpus, options.chat_template, trainable_adapter=True)
    dataset = rows(pairs, Renderer.of(tokenizer))
    sources = defaultdict(int)
    for p in pairs:
        sources[p.source] += 1
    recorder.start({"source": options.data or options.db, "pairs": len(pairs), **{f"{k}_pairs": v for k, v in sources.items()}})
    tiny_base = options.base_model == models.TINY
    if tiny_base:
        models.save_tiny_base(model, tokenizer, output, options.tiny)
    args = DPOConfig(
        output_dir=str(output),
        max_steps=options.max_steps,
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        learning_rate=options.learning_rate,
        beta=options.beta,
        max_length=options.max_length,
        logging_steps=options.logging_steps,
        save_steps=options.save_steps,
        seed=options.seed,
        report_to=[],
        disable_tqdm=True,
        **models.device_args(),
    )
    trainer = DPOTrainer(
        model=wrap_lora(model, options.lora),
        args=args,
        train_dataset=Dataset.from_list(dataset),
        processing_class=tokenizer,
        callbacks=[MetricsCallback(recorder), stop],
    )
    return {**models.train_and_save(trainer, tokenizer, output, stop, tiny_base=tiny_base), "pairs": len(pairs)}
