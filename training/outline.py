"""The outline every training algorithm follows, written once.

A run installs its SIGTERM handler, prepares its data and model (the only part an
algorithm writes, with its own ``TrainingArguments`` subclass and trainer), records
what it trains on, keeps a freshly built tiny base beside the adapter, wraps the
model in LoRA, trains, and saves. ``SFTRun``, ``GRPORun`` and ``DPORun`` fill in
:meth:`AlgorithmRun.prepare` and :meth:`AlgorithmRun.arguments`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training import models
from training.callbacks import GracefulStop, MetricsCallback
from training.config import TINY, TrainingConfig
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
    }


class AlgorithmRun(ABC):
    """One training run of one algorithm; :meth:`train` is the outline."""

    trainer_class: type

    def __init__(self, config: TrainingConfig, recorder: RunRecorder):
        self.config = config
        self.recorder = recorder
        self.output = Path(str(config.output))

    @abstractmethod
    def prepare(self) -> Prepared:
        """Load the records and the model, and build the dataset; ``TrainingError`` on bad input."""

    @abstractmethod
    def arguments(self, prepared: Prepared) -> Any:
        """The trainer's arguments: :func:`shared_arguments` plus the algorithm's own."""

    @property
    def adapts(self) -> bool:
        """Whether the run trains a LoRA adapter (rather than every weight)."""
        return True

    def resume_from(self) -> str | None:
        return None

    def train(self) -> dict[str, Any]:
        stop = GracefulStop()
        prepared = self.prepare()
        self.recorder.start(prepared.summary)
        tiny_base = self.config.base_model == TINY and self.adapts
        if tiny_base:
            models.save_tiny_base(prepared.model, prepared.tokenizer, self.output, self.config.tiny)
        model = models.wrap_lora(prepared.model, self.config) if self.adapts else prepared.model
        trainer = self.trainer_class(
            model=model,
            args=self.arguments(prepared),
            train_dataset=prepared.dataset,
            processing_class=prepared.tokenizer,
            callbacks=[MetricsCallback(self.recorder), stop],
            **prepared.trainer_kwargs,
        )
        resume = self.resume_from()
        summary = models.train_and_save(trainer, prepared.tokenizer, self.output, stop, tiny_base=tiny_base,
                                        resume=resume)
        return {**summary, **({"resumed_from": resume} if resume else {})}
