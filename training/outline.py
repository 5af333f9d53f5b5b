"""The outline every training algorithm follows, written once.

A run installs its SIGTERM handler, makes its trainer's arguments, prepares its data
and model (the only parts an algorithm writes, with its own ``TrainingArguments``
subclass and trainer), records what it trains on, keeps a freshly built tiny base
beside the adapter, wraps the model in LoRA, trains, and saves. ``SFTRun``,
``GRPORun`` and ``DPORun`` fill in :meth:`AlgorithmRun.arguments` and
:meth:`AlgorithmRun.prepare`.

The arguments come first, before any weights: under DeepSpeed ZeRO-3 making them
registers the DeepSpeed config (``HfDeepSpeedConfig``) that ``from_pretrained``
looks for to build the model inside ``zero.Init``, already partitioned; made after,
every process would load the whole model first. Making them also starts the process
group of a launched run, which :meth:`AlgorithmRun.prepare` may wait on (the
examples are encoded by the main process only, :mod:`training.distributed`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training import distributed, models
from training.callbacks import GracefulStop, MetricsCallback
from training.config import DEMO, TINY, TrainingConfig
from training.recorder import RunRecorder


@dataclass
class Prepared:
    """What an algorithm hands the outline: the model, tokenizer and dataset, and what the run records of them."""

    model: Any
    tokenizer: Any
    dataset: Any
    summary: dict[str, Any]
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)


def shared_arguments(config: TrainingConfig) -> dict[str, Any]:
    """The ``TrainingArguments`` fields every algorithm sets the same way."""
    chosen = models.precision()
    return {
        "output_dir": str(config.output),
        "max_steps": config.max_steps,
        "num_train_epochs": config.epochs,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.learning_rate,
        "logging_steps": config.logging_steps,
        "save_steps": config.save_steps,
        "seed": config.seed,
        "report_to": [],
        "disable_tqdm": True,
        **chosen.arguments(),
        "activation_checkpointing": models.gradient_checkpointing(config.gradient_checkpointing, chosen),
        "activation_checkpointing_kwargs": {"use_reentrant": False},
        "ddp_find_unused_parameters": False if uses_every_parameter(config) else None,
    }


def uses_every_parameter(config: TrainingConfig) -> bool:
    """Whether every trained parameter takes part in each forward pass, so DDP need not look for unused ones.

    A LoRA adapter's matrices sit on linear layers every forward runs, and the tiny and demo Llamas use all of
    their weights. A full fine-tune of another model may hold weights its forward skips; the trainer then keeps
    its own choice (``find_unused_parameters=True``: one more traversal of the autograd graph every step).
    """
    return not getattr(config, "full_finetune", False) or config.base_model in (TINY, DEMO)


class AlgorithmRun(ABC):
    """One training run of one algorithm; :meth:`train` is the outline."""

    trainer_class: type

    def __init__(self, config: TrainingConfig, recorder: RunRecorder):
        self.config = config
        self.recorder = recorder
        self.output = Path(str(config.output))

    @abstractmethod
    def arguments(self) -> Any:
        """The trainer's arguments: :func:`shared_arguments` plus the algorithm's own; made before the model."""

    @abstractmethod
    def prepare(self, args: Any) -> Prepared:
        """Load the records and the model, and build the dataset; ``TrainingError`` on bad input."""

    @property
    def adapts(self) -> bool:
        """Whether the run trains a LoRA adapter (rather than every weight)."""
        return True

    def resume_from(self) -> str | None:
        return None

    def train(self) -> dict[str, Any]:
        stop = GracefulStop()
        args = self.arguments()
        prepared = self.prepare(args)
        if self.config.base_model == TINY:
            distributed.check_same_tokenizer(args, prepared.tokenizer)
        self.recorder.start(prepared.summary)
        tiny_base = self.config.base_model == TINY and self.adapts
        if tiny_base and args.should_save:
            models.save_tiny_base(prepared.model, prepared.tokenizer, self.output, self.config.tiny)
        model = models.wrap_lora(prepared.model, self.config) if self.adapts else prepared.model
        trainer = self.trainer_class(
            model=model,
            args=args,
            train_dataset=prepared.dataset,
            processing_class=prepared.tokenizer,
            callbacks=[MetricsCallback(self.recorder), stop],
            **prepared.trainer_kwargs,
        )
        resume = self.resume_from()
        summary = models.train_and_save(trainer, self.output, stop, tiny_base=tiny_base, resume=resume)
        return {**summary, **({"resumed_from": resume} if resume else {})}
