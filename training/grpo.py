"""GRPO through TRL's ``GRPOTrainer``, rewarded by the judge's error-type reward.

Prompts are the single-step contexts of accepted trajectories (every trainable
assistant call step), rendered with the model's chat template; each sampled
completion is read with :func:`parse_generation` and judged against the call
the annotators approved: unparseable −2 … correct +1 (TL-Training).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.toolcalls import judge
from training import models
from training.callbacks import GracefulStop, MetricsCallback
from training.data import Renderer, iter_steps, load_records, sft_records
from training.errors import TrainingError
from training.options import RunOptions
from training.sft import wrap_lora
from training.templates import parse_generation


@dataclass
class GRPOOptions(RunOptions):
    """An RL run's settings (named so as not to shadow TRL's ``GRPOConfig``)."""

    output: str = "runs/grpo"
    max_steps: int = 50
    num_generations: int = 4
    max_prompt_length: int | None = None
    max_completion_length: int = 96
    learning_rate: float = 1e-5
    beta: float = 0.0
    temperature: float = 1.0


def prompts(records: list[dict[str, Any]], renderer: Renderer) -> list[dict[str, str]]:
    """One row per call step: the rendered prompt, the approved calls and the toolset, as JSON."""
    rows = []
    for record in records:
        for context, message in iter_steps(record):
            rows.append(
                {
                    "prompt": renderer.prompt(context, record.get("tools")),
                    "gold": json.dumps([c["function"] for c in message["tool_calls"]]),
                    "tools": json.dumps(record.get("tools") or []),
                }
            )
    return rows


def error_type_reward(completions: list[str], gold: list[str], tools: list[str], **_: Any) -> list[float]:
    """The judge's reward for the first call of each completion (−2 when none can be read)."""
    rewards = []
    for completion, gold_json, tools_json in zip(completions, gold, tools):
        generation = parse_generation(completion)
        predicted: Any = generation.calls[0] if generation.calls else completion
        rewards.append(judge(predicted, json.loads(gold_json)[:1], json.loads(tools_json)).reward)
    return rewards


def train(options: GRPOOptions, recorder) -> dict[str, Any]:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    stop = GracefulStop()
    output = Path(options.output)
    records = sft_records(load_records(options.data, options.db))
    model, tokenizer = models.load(
        options.base_model, options.tiny, records, options.chat_template, trainable_adapter=True
    )
    rows = prompts(records, Renderer.of(tokenizer))
    if not rows:
        raise TrainingError("no prompts: the dataset has no accepted tool-call step")
    recorder.start({"source": options.data or options.db, "trajectories": len(records), "prompts": len(rows)})
    tiny_base = options.base_model == models.TINY
    if tiny_base:
        models.save_tiny_base(model, tokenizer, output, options.tiny)
    tokenizer.padding_side = "left"
    args = GRPOConfig(
        output_dir=str(output),
        max_steps=options.max_steps,
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        num_generations=options.num_generations,
        max_completion_length=options.max_completion_length,
        learning_rate=options.learning_rate,
        beta=options.beta,
        temperature=options.temperature,
        logging_steps=options.logging_steps,
        save_steps=options.save_steps,
        seed=options.seed,
        report_to=[],
        disable_tqdm=True,
        **models.device_args(),
    )
    trainer = GRPOTrainer(
        model=wrap_lora(model, options.lora),
        reward_funcs=error_type_reward,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[MetricsCallback(recorder), stop],
    )
    return models.train_and_save(trainer, tokenizer, output, stop, tiny_base=tiny_base)
