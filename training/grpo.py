"""GRPO through TRL's ``GRPOTrainer``, rewarded by the judge's error-type reward.

Prompts are the single-step contexts of accepted trajectories (every trainable
assistant call step), rendered with the model's chat template; each sampled
completion is read with :func:`parse_generation` and judged against the call
the annotators approved: unparseable −2 … correct +1 (TL-Training).

Completions are sampled with transformers' ``generate``, or with vLLM through TRL
(``--use-vllm``: in each training process, or by a ``trl vllm-serve`` server with
``--vllm-mode server``) when vllm is installed.
"""
from __future__ import annotations

import json
from typing import Any

import trl
from datasets import Dataset
from trl import GRPOTrainer
from trl.import_utils import is_vllm_available

from store.toolcalls import judge
from training import models
from training.config import GRPOConfig
from training.data import Renderer, iter_steps, load_records, sft_records
from training.errors import TrainingError
from training.outline import AlgorithmRun, Prepared, shared_arguments
from training.recorder import RunRecorder
from training.templates import parse_generation


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


def fits(rows: list[dict[str, str]], tokenizer, context: int | None, completion: int) -> None:
    """Stop with one line when the longest prompt and a completion do not fit the model's positions."""
    if context is None:
        return
    longest = max(len(tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]) for r in rows)
    if longest + completion > context:
        raise TrainingError(f"the longest prompt is {longest} tokens: with --max-completion-length {completion} it "
                            f"exceeds the base model's {context} positions; use a model with a longer context or "
                            "a smaller toolset")


def error_type_reward(completions: list[str], gold: list[str], tools: list[str], **_: Any) -> list[float]:
    """The judge's reward for the first call of each completion (−2 when none can be read)."""
    rewards = []
    for completion, gold_json, tools_json in zip(completions, gold, tools):
        generation = parse_generation(completion)
        predicted: Any = generation.calls[0] if generation.calls else completion
        rewards.append(judge(predicted, json.loads(gold_json)[:1], json.loads(tools_json)).reward)
    return rewards


class GRPORun(AlgorithmRun):
    config: GRPOConfig

    trainer_class = GRPOTrainer

    def prepare(self, args: trl.GRPOConfig) -> Prepared:
        config = self.config
        records = sft_records(load_records(config.data, config.db))
        model, tokenizer = models.load(config.base_model, config.tiny, records, config.chat_template,
                                       trainable_adapter=True)
        rows = prompts(records, Renderer.of(tokenizer))
        if not rows:
            raise TrainingError("no prompts: the dataset has no accepted tool-call step")
        fits(rows, tokenizer, models.context_length(model.config), config.max_completion_length)
        tokenizer.padding_side = "left"
        summary = {"source": config.data or config.db, "trajectories": len(records), "prompts": len(rows)}
        return Prepared(model, tokenizer, Dataset.from_list(rows), summary, {"reward_funcs": error_type_reward})

    def arguments(self) -> trl.GRPOConfig:
        return trainer_arguments(self.config, vllm_installed=is_vllm_available())


def trainer_arguments(config: GRPOConfig, vllm_installed: bool) -> trl.GRPOConfig:
    """TRL's arguments for the run; ``TrainingError`` when ``--use-vllm`` asks for a vllm that is not installed."""
    return trl.GRPOConfig(
        **shared_arguments(config),
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        beta=config.beta,
        temperature=config.temperature,
        **generation_arguments(config, vllm_installed),
    )


def generation_arguments(config: GRPOConfig, vllm_installed: bool) -> dict[str, Any]:
    """The ``trl.GRPOConfig`` fields of vLLM generation when asked for (none: transformers' ``generate``)."""
    if not config.use_vllm:
        return {}
    if not vllm_installed:
        raise TrainingError("--use-vllm: vllm is not installed in this environment (pip install vllm), "
                            "or leave --use-vllm out to generate with transformers")
    server = {"vllm_server_base_url": config.vllm_server_url} if config.vllm_server_url else {}
    return {"use_vllm": True, "vllm_mode": config.vllm_mode, **server}


def train(config: GRPOConfig, recorder: RunRecorder) -> dict[str, Any]:
    return GRPORun(config, recorder).train()
